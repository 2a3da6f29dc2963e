from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('metacore', '0006_organization_installations'),
    ]

    operations = [
        migrations.CreateModel(
            name='TenantSchema',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('addon_key', models.CharField(db_index=True, max_length=64)),
                ('organization_id', models.UUIDField()),
                ('space', models.CharField(help_text='<key>_<first 8 hex of the organization>', max_length=64, unique=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
            ],
            options={
                'ordering': ['addon_key', 'space'],
                'constraints': [models.UniqueConstraint(fields=('addon_key', 'organization_id'), name='metacore_tenant_schema_once')],
            },
        ),
    ]
