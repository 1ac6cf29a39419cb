"""`manage.py check_health`: the /readyz checks from a shell, a cron job or a container
health check. Exit status 0 when ready, 1 when not."""

import json

from django.core.management.base import BaseCommand, CommandError

from ops.health import readiness


class Command(BaseCommand):
    help = "Check the database, Redis and the engine; exit 1 when not ready."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args, **options):
        report = readiness()
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2))
        else:
            for name, check in report["checks"].items():
                state = "ok" if check["ok"] else f"FAILED: {check.get('error', '')}"
                self.stdout.write(f"{name}: {state}")
        if not report["ready"]:
            raise CommandError("not ready", returncode=1)
        self.stdout.write("ready")
