import hashlib
import json

from django.db import migrations


# A frozen copy of chat_session/checksum.py: migrations must not follow later code.
def _checksum(fields):
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def backfill(apps, schema_editor):
    ChatSession = apps.get_model("chat_session", "ChatSession")
    Message = apps.get_model("chat_session", "Message")
    for session in ChatSession.objects.filter(checksum=""):
        fields = {"client_id": str(session.client_id), "title": session.title}
        session.checksum = _checksum({**fields, "model": session.model_id})
        session.save(update_fields=["checksum"])
    for message in Message.objects.filter(checksum=""):
        fields = {"client_id": str(message.client_id), "role": message.role}
        message.checksum = _checksum({**fields, "content": message.content})
        message.save(update_fields=["checksum"])


class Migration(migrations.Migration):
    dependencies = [("chat_session", "0008_message_session_idx")]

    # Backward there is nothing to undo: the rows keep valid checksums.
    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
