import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("ai_model", "0001_initial"),
        ("chat_session", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="chatsession",
            name="model",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="sessions",
                to="ai_model.aimodel",
            ),
        ),
    ]
