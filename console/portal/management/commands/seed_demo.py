"""Seed the demo personas (idempotent). Passwords are generated on the first run and kept in
``var/demo-logins.json`` (mode 0600) so every later run prints the same logins."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from console.access import roles
from console.access.services import user_create, user_set_password

PERSONAS = [
    # username, full name, global roles, superuser, what the persona is for
    ("admin", ("Ada", "Admin"), [roles.PLATFORM_ADMIN], True, "platform admin"),
    ("alice", ("Alice", "Nguyen"), [], False, "data scientist"),
    ("bob", ("Bob", "Okafor"), [], False, "viewer"),
    ("carol", ("Carol", "Schmidt"), [roles.AUDITOR], False, "auditor"),
]
SERVICE_ACCOUNTS = [("ci-deployer", "Deploys models from the CI pipeline")]


def logins_file() -> Path:
    return Path(settings.VAR_DIR) / "demo-logins.json"


def _load_passwords(path: Path) -> dict[str, str]:
    if path.exists():
        return {name: entry["password"] for name, entry in json.loads(path.read_text()).items()}
    return {}


def _save_passwords(path: Path, passwords: dict[str, str]) -> None:
    purposes = {name: purpose for name, _n, _r, _s, purpose in PERSONAS}
    data = {name: {"password": passwords[name], "persona": purposes[name]} for name in purposes}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)


class Command(BaseCommand):
    help = "Create the demo personas, service account and demo content (safe to run again)."

    def add_arguments(self, parser):
        parser.add_argument("--users-only", action="store_true", help="only the personas, no sandbox content")

    def handle(self, *args, **options):
        roles.ensure_global_roles()
        path = logins_file()
        passwords = _load_passwords(path)
        User = get_user_model()
        with transaction.atomic():
            for username, (first, last), global_roles, superuser, _purpose in PERSONAS:
                password = passwords.setdefault(username, secrets.token_urlsafe(12))
                user = User.objects.filter(username=username).first()
                if user is None:
                    user_create(
                        actor=None, username=username, password=password, first_name=first, last_name=last,
                        email=f"{username}@example.com", is_superuser=superuser, global_roles=global_roles,
                    )
                elif not user.check_password(password):
                    user_set_password(actor=None, user=user, password=password)
            for username, description in SERVICE_ACCOUNTS:
                if not User.objects.filter(username=username).exists():
                    user_create(actor=None, username=username, is_service_account=True, description=description)
        _save_passwords(path, passwords)
        self.stdout.write(self.style.SUCCESS(f"Demo personas ready (logins in {path})."))
        if not options["users_only"]:
            from console.portal import demo

            demo.seed(stdout=self.stdout)

