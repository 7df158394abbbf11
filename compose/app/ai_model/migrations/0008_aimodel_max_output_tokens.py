from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("ai_model", "0007_aimodel_provider_name_idx")]

    operations = [
        migrations.AddField(
            model_name="aimodel",
            name="max_output_tokens",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
    ]
