from django.db import migrations


class Migration(migrations.Migration):
    """Release v2-irreversible (drilled on purpose, not part of the stack's own history):
    ``created_at`` is dropped with its values. Django unapplies it without complaint -- the
    reverse re-adds the column filled with the time of the rollback -- so every note's creation
    time is lost on the way back."""

    dependencies = [("notes", "0002_note_color")]

    operations = [
        migrations.AlterModelOptions(name="note", options={"ordering": ["-id"]}),
        migrations.RemoveField(model_name="note", name="created_at"),
    ]
