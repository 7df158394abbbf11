from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("ai_model", "0006_aimodel_description")]

    operations = [
        migrations.AddIndex(
            model_name="aimodel",
            index=models.Index(fields=["provider", "name"], name="ai_model_provider_name_idx"),
        ),
    ]
