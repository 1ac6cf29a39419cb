"""Run the retention purge now (Celery beat runs it every RETENTION_PURGE_INTERVAL)."""

import datetime
import json

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from audit.retention import purge_expired


class Command(BaseCommand):
    help = (
        "Delete what has outlived RETENTION_UPLOAD_DAYS / RETENTION_MESSAGE_DAYS / "
        "RETENTION_AUDIT_DAYS: uploads and their files, messages, audit details and old "
        "audit events (docs/review.md)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--as-of",
            help=(
                "evaluate the retention periods as if it were this time (ISO 8601), e.g. "
                "to rehearse a policy on a copy of the database; default now"
            ),
        )

    def handle(self, *args, **options):
        now = timezone.now()
        if options["as_of"]:
            now = parse_datetime(options["as_of"])
            if now is None:
                raise CommandError("--as-of must be an ISO 8601 date and time")
            if timezone.is_naive(now):
                now = timezone.make_aware(now, datetime.UTC)
        report = purge_expired(now=now)
        self.stdout.write(json.dumps(report.as_dict()))
