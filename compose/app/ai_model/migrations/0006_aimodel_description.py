from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("ai_model", "0005_seed_models")]

    operations = [
        migrations.AddField(
            model_name="aimodel",
            name="description",
            field=models.TextField(blank=True, default=""),
        ),
    ]
