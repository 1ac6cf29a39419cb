"""Erase an account and all its data (an erasure request received by an operator)."""

import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from audit.erasure import user_erase


class Command(BaseCommand):
    help = "Delete a user and everything they own; the audit trail keeps only metadata."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    def handle(self, *args, username, yes, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user {username!r}.")
        if not yes:
            answer = input(f"Erase {username!r} and all their data? This cannot be undone. [y/N] ")
            if answer.strip().lower() not in {"y", "yes"}:
                raise CommandError("Nothing was erased.")
        counts = user_erase(user=user, acting_user=None)
        self.stdout.write(json.dumps({"erased": True, **counts}))
