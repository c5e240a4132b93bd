"""``python manage.py audit_verify``: recompute every event digest, seal, signature and chain
link, and report the first broken event or seal. Exit code 0 when the trail verifies, 1 when
it does not."""

from __future__ import annotations

import json
import time

from django.core.management.base import BaseCommand

from audit import services
from audit.verify import verify


class Command(BaseCommand):
    help = "Verify the audit trail against its seals; exit code 1 on any modified, deleted, inserted or " \
           "reordered event or broken seal."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")
        parser.add_argument("--all", action="store_true", help="List every problem, not only the first 20.")
        parser.add_argument("--no-record", action="store_true",
                            help="Do not record the verification in the audit trail.")

    def handle(self, *args, **options):
        started = time.perf_counter()
        report = verify()
        seconds = time.perf_counter() - started
        checked = report.events + report.archived_events
        rate = round(checked / seconds) if seconds > 0 else 0
        if not options["no_record"]:
            services.record_verification(actor=None, actor_name="audit_verify (command)", report=report)
        if options["json"]:
            summary = {**report.summary(), "seconds": round(seconds, 3), "events_per_second": rate}
            self.stdout.write(json.dumps(summary, indent=2, default=str))
        else:
            self._print(report, every=options["all"])
            self.stdout.write(f"Checked {checked} events in {seconds:.1f} s ({rate} events/s).")
        if not report.ok:
            raise SystemExit(1)

    def _print(self, report, *, every: bool) -> None:
        write = self.stdout.write
        write(f"Seals: {report.seals}  events verified: {report.events}  archived events verified: "
              f"{report.archived_events}  unsealed (waiting for the sealer): {report.unsealed}")
        if report.ok:
            write(self.style.SUCCESS("OK: the audit trail verifies."))
            return
        first = report.first
        write(self.style.ERROR(f"FAILED: {len(report.problems)} problem(s)"
                               f"{' (list truncated)' if report.truncated else ''}."))
        write(self.style.ERROR(f"First: [{first.kind}] {first.message}"))
        problems = sorted(report.problems, key=lambda p: p.position)
        for problem in problems if every else problems[:20]:
            write(f"  [{problem.kind}] {problem.message}")
