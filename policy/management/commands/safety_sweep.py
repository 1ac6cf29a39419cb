"""Remove unredacted model copies of screenshots that nobody asked about in time.

Answers remove their own screenshot's unredacted copy when they finish; this catches
uploads that were never asked about. Celery beat runs the same sweep every
SAFETY_SWEEP_INTERVAL seconds (the embedded mode runs it in the web process)."""

from django.core.management.base import BaseCommand

from policy.tasks import unredacted_copies_sweep


class Command(BaseCommand):
    help = "Replace unredacted model copies older than UNREDACTED_IMAGE_TTL with redacted ones."

    def handle(self, *args, **options):
        self.stdout.write(f"{unredacted_copies_sweep()} unredacted model copies removed")
