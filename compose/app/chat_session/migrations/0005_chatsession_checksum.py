from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("chat_session", "0004_chatsession_updated_at")]

    operations = [
        migrations.AddField(
            model_name="chatsession",
            name="checksum",
            field=models.CharField(blank=True, default="", max_length=64),
        ),
    ]
