"""``manage.py ldap_sync``: the periodic LDAP pass, now (e.g. right after a directory change)."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = ("Re-read every LDAP-linked person with the service account: group memberships follow the "
            "directory; a removed, locked or disabled entry ends the person's sessions and API tokens.")

    def handle(self, *args, **options):
        if not settings.LDAP_SERVER_URI:
            raise CommandError("LDAP sign-in is not configured (set LDAP_SERVER_URI).")
        from console.access.ldap import ldap_sync

        report = ldap_sync()
        for line in report.changes:
            self.stdout.write(line)
        counts = report.as_dict()
        self.stdout.write(", ".join(f"{name.replace('_', ' ')}: {value}" for name, value in counts.items()))
        if report.unreachable:
            raise CommandError(f"The directory could not be reached; {report.unreachable} people were left as they were.")
