import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("chat_session", "0003_message")]

    operations = [
        migrations.AddField(
            model_name="chatsession",
            name="updated_at",
            field=models.DateTimeField(auto_now=True, default=django.utils.timezone.now),
            preserve_default=False,
        ),
    ]
