from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('metacore', '0007_tenant_schema'),
    ]

    operations = [
        migrations.AddField(
            model_name='registrystate',
            name='access_revision',
            field=models.PositiveBigIntegerField(default=0),
        ),
    ]
