from django.db import migrations


class Migration(migrations.Migration):
    """Release with an IRREVERSIBLE migration (drilled on purpose): ``updated_at`` is dropped
    with its values. Django unapplies it without complaint -- the reverse re-adds the column,
    filled with the time of the rollback -- so the data it held is lost on the way back, which
    only a round trip on real rows shows (``rollback-drill check-migrations``)."""

    dependencies = [("chat_session", "0011_chatsession_transport")]

    operations = [migrations.RemoveField(model_name="chatsession", name="updated_at")]
