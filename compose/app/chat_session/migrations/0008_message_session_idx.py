from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("chat_session", "0007_chatsession_created_idx")]

    operations = [
        migrations.AddIndex(
            model_name="message",
            index=models.Index(fields=["session", "created_at"], name="chat_message_session_idx"),
        ),
    ]
