import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("ai_model", "0003_aimodel_is_active")]

    operations = [
        migrations.AddField(
            model_name="aimodel",
            name="created_at",
            field=models.DateTimeField(auto_now_add=True, default=django.utils.timezone.now),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="aimodel",
            name="updated_at",
            field=models.DateTimeField(auto_now=True),
        ),
    ]
