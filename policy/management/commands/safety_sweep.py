"""Remove unredacted model copies of screenshots that nobody asked about in time.

Answers remove their own screenshot's unredacted copy when they finish; this catches
uploads that were never asked about (run it from cron, e.g. every 10 minutes)."""

from django.core.management.base import BaseCommand

from assistant.safety.pipeline import uploads_forget_stale_unredacted


class Command(BaseCommand):
    help = "Replace unredacted model copies older than UNREDACTED_IMAGE_TTL with redacted ones."

    def handle(self, *args, **options):
        total = 0
        while True:
            done = uploads_forget_stale_unredacted(limit=100)
            total += done
            if done < 100:
                break
        self.stdout.write(f"{total} unredacted model copies removed")
