from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("chat_session", "0006_message_checksum")]

    operations = [
        migrations.AddIndex(
            model_name="chatsession",
            index=models.Index(fields=["-created_at"], name="chat_session_created_idx"),
        ),
    ]
