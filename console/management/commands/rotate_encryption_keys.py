"""Re-encrypt every stored secret with the first key of CONSOLE_ENCRYPTION_KEYS.

Rotation without downtime: put the new key first (keep the old one after it), restart the web
and worker processes, run this command, then remove the old key and restart again.
"""

from django.core.management.base import BaseCommand, CommandError

from console import crypto


class Command(BaseCommand):
    help = "Re-encrypt every stored secret value with the first key in CONSOLE_ENCRYPTION_KEYS."

    def handle(self, *args, **options):
        try:
            crypto.verify_keys()
            counts = crypto.rotate_all()
        except crypto.DecryptionError as exc:
            raise CommandError(f"{exc}: add the key it was encrypted with to CONSOLE_ENCRYPTION_KEYS and run again") from exc
        total = sum(counts.values())
        for label, count in counts.items():
            self.stdout.write(f"{label}: {count} re-encrypted")
        self.stdout.write(self.style.SUCCESS(f"{total} values now encrypted with the first key"))
