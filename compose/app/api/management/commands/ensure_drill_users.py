"""Create or update the drill's two users from the environment; safe to rerun."""

import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

ENV = ("DRILL_USER", "DRILL_PASSWORD", "DRILL_ADMIN", "DRILL_ADMIN_PASSWORD")


class Command(BaseCommand):
    help = (
        "Ensure DRILL_USER (normal) and DRILL_ADMIN (staff superuser) exist with their passwords."
    )

    def handle(self, *args, **options):
        missing = [name for name in ENV if not os.environ.get(name)]
        if missing:
            raise CommandError(f"set {', '.join(missing)} in the environment")
        user, password, admin, admin_password = (os.environ[name] for name in ENV)
        if user == admin:
            raise CommandError("DRILL_USER and DRILL_ADMIN must be different users")
        self._ensure(user, password, staff=False)
        self._ensure(admin, admin_password, staff=True)

    def _ensure(self, username: str, password: str, *, staff: bool) -> None:
        account, created = get_user_model().objects.get_or_create(username=username)
        changed = created
        for flag in ("is_staff", "is_superuser"):
            if getattr(account, flag) != staff:
                setattr(account, flag, staff)
                changed = True
        if not account.is_active:
            account.is_active, changed = True, True
        # Only a changed password is set again: a new hash would log out every
        # session of the user (Django ties sessions to the password hash).
        if not account.check_password(password):
            account.set_password(password)
            changed = True
        if changed:
            account.save()
        state = "created" if created else ("updated" if changed else "unchanged")
        self.stdout.write(f"{'staff ' if staff else ''}user {username}: {state}")
