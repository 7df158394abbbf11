"""Create (or update) the demo user and the staff user from the environment.

NOTES_DEMO_USER / NOTES_DEMO_PASSWORD    a normal user
NOTES_STAFF_USER / NOTES_STAFF_PASSWORD  a staff superuser (the admin at /manage/)

Idempotent: run it after every deployment; it resets the passwords to the environment's."""

import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import Profile


class Command(BaseCommand):
    help = "Create the demo and staff users from NOTES_* environment variables."

    def handle(self, *args, **options):
        specs = [
            ("NOTES_DEMO_USER", "NOTES_DEMO_PASSWORD", False),
            ("NOTES_STAFF_USER", "NOTES_STAFF_PASSWORD", True),
        ]
        User = get_user_model()
        for user_var, password_var, staff in specs:
            username = os.environ.get(user_var, "").strip()
            password = os.environ.get(password_var, "")
            if not username:
                self.stdout.write(f"{user_var} is empty: skipped")
                continue
            if not password:
                raise CommandError(f"{password_var} is not set")
            with transaction.atomic():
                user, created = User.objects.get_or_create(username=username)
                user.is_staff = user.is_superuser = staff
                user.is_active = True
                user.set_password(password)
                user.save()
                Profile.objects.get_or_create(
                    user=user, defaults={"display_name": username.title()}
                )
            self.stdout.write(
                f"{'created' if created else 'updated'} {'staff' if staff else 'user'} {username}"
            )
