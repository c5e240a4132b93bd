"""``manage.py authz_allows_drain``: staged allow decisions into the audit trail, now (the
periodic ``drain_allows_task`` does the same every AUTHZ_ALLOW_DRAIN_SECONDS)."""

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = ("Write the allowed inference checks waiting in staging to the audit trail as infer.allow events "
            "(one per principal, endpoint and minute, with the count) and remove them from staging.")

    def handle(self, *args, **options):
        from console.access.authz.allows import allows_drain
        from console.access.authz.journal import adopt_orphans

        # Journals left in this host's AUTHZ_ALLOW_JOURNAL_DIR by stopped authorizer processes.
        self.stdout.write(f"shipped {adopt_orphans()} allows from stopped processes' journals")
        self.stdout.write(f"drained {allows_drain()} staged allows")
