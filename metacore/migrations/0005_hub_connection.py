from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('metacore', '0004_integrations'),
    ]

    operations = [
        migrations.CreateModel(
            name='HubConnection',
            fields=[
                ('id', models.CharField(max_length=32, primary_key=True, serialize=False)),
                ('user_id', models.CharField(db_index=True, max_length=64)),
                ('tenant', models.CharField(blank=True, db_index=True, max_length=64)),
                ('channel', models.CharField(blank=True, max_length=200)),
                ('connected_at', models.DateTimeField()),
                ('expires_at', models.DateTimeField(db_index=True)),
            ],
        ),
    ]
