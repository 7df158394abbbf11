from django.db import migrations, models


class Migration(migrations.Migration):
    """Hybrid release: a session's transport. Reversible: backward drops index and column.

    The column has a database default, so the pre-hybrid code can still insert
    sessions while it exists (code rolled back before this migration is).
    """

    dependencies = [("chat_session", "0010_message_role_check")]

    operations = [
        migrations.AddField(
            model_name="chatsession",
            name="transport",
            field=models.CharField(db_default="http", default="http", max_length=16),
        ),
        migrations.AddIndex(
            model_name="chatsession",
            index=models.Index(fields=["transport"], name="chat_session_transport_idx"),
        ),
    ]
