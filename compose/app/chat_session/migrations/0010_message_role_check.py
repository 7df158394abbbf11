from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("chat_session", "0009_backfill_checksums")]

    operations = [
        migrations.AlterField(
            model_name="message",
            name="role",
            field=models.CharField(
                choices=[("user", "User"), ("assistant", "Assistant"), ("system", "System")],
                max_length=16,
            ),
        ),
        migrations.AddConstraint(
            model_name="message",
            constraint=models.CheckConstraint(
                condition=models.Q(role__in=["user", "assistant", "system"]),
                name="chat_message_role_valid",
            ),
        ),
    ]
