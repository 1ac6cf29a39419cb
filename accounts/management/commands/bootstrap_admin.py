import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Create the first admin from DJANGO_SUPERUSER_USERNAME and DJANGO_SUPERUSER_PASSWORD "
        "if they are set and no such user exists; otherwise say how to."
    )

    def handle(self, *args, **options):
        User = get_user_model()
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME", "").strip()
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD", "")
        if username and password:
            if User.objects.filter(username=username).exists():
                self.stdout.write(f"Admin user {username!r} already exists.")
                return
            User.objects.create_superuser(
                username=username,
                password=password,
                email=os.environ.get("DJANGO_SUPERUSER_EMAIL", ""),
            )
            self.stdout.write(f"Created admin user {username!r}.")
            return
        if not User.objects.filter(is_superuser=True).exists():
            self.stdout.write(
                "No admin user yet. Set DJANGO_SUPERUSER_USERNAME and DJANGO_SUPERUSER_PASSWORD "
                "before `make run`, or run `.venv/bin/python manage.py createsuperuser`. "
                "Anyone can sign up at /accounts/signup/."
            )
