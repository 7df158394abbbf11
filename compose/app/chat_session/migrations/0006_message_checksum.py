from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("chat_session", "0005_chatsession_checksum")]

    operations = [
        migrations.AddField(
            model_name="message",
            name="checksum",
            field=models.CharField(blank=True, default="", max_length=64),
        ),
    ]
