from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key for a user. The raw key is printed once, as the last line."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="A label to recognise the key by.")

    def handle(self, *args, username, name, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        api_key, raw_key = api_key_create(user=user, name=name or "created by manage.py")
        self.stdout.write(
            f"Created key glk_{api_key.prefix}… for {username}. It will not be shown again:"
        )
        self.stdout.write(raw_key)
