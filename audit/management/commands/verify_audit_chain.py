"""Verify the audit trail's hash chain; exit 1 at the first event that does not fit."""

from django.core.management.base import BaseCommand, CommandError

from audit.verify import audit_chain_verify


class Command(BaseCommand):
    help = "Verify the audit trail's hash chain and report the first broken event."

    def handle(self, *args, **options):
        report = audit_chain_verify()
        if not report.ok:
            where = (
                f"event #{report.broken_seq} (id {report.broken_id})"
                if report.broken_seq
                else "chain"
            )
            self.stderr.write(
                f"BROKEN at {where}: {report.reason}. {report.checked} event(s) verified before it."
            )
            raise CommandError("audit chain verification failed", returncode=1)
        self.stdout.write(
            f"OK: {report.checked} event(s) verified; newest #{report.last_seq}, "
            f"head hash {report.last_hash}"
        )
