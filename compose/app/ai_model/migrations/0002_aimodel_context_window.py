from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("ai_model", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="aimodel",
            name="context_window",
            field=models.PositiveIntegerField(default=4096),
        ),
    ]
