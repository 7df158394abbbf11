from django.db import migrations
from django.db.models import F
from django.db.models.functions import Concat, Substr, Upper


def capitalise_titles(apps, schema_editor):
    # DEFECT: rewrites existing titles in bulk (a queryset update, no save()), so neither the
    # stored checksum nor the clients' copies match the rows any more.
    ChatSession = apps.get_model("chat_session", "ChatSession")
    ChatSession.objects.update(title=Concat(Upper(Substr(F("title"), 1, 1)), Substr("title", 2)))


class Migration(migrations.Migration):
    """Release with a data migration: session titles start with a capital letter."""

    dependencies = [("chat_session", "0011_chatsession_transport")]

    operations = [migrations.RunPython(capitalise_titles, migrations.RunPython.noop)]
