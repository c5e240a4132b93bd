"""``python manage.py audit_seal``: run the sealer now (it also runs periodically)."""

from django.core.management.base import BaseCommand

from audit.sealing import seal_pending


class Command(BaseCommand):
    help = "Seal the audit events that no seal covers yet."

    def handle(self, *args, **options):
        seals = seal_pending()
        events = sum(s.event_count for s in seals)
        self.stdout.write(f"Created {len(seals)} seal(s) covering {events} event(s).")
