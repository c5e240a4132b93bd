"""What an upgrade must preserve, as JSON: ``python tests/upgrade/snapshot.py --at <iso>``.

Prints the row count of every concrete installed model (keyed by ``model._meta.label``, the
auto-created many-to-many tables included) and, for every user in the database, the
"persona answers" the permission layer gives at the instant ``--at``: whether the user is a
platform admin, three global permissions, and the natural keys of the projects, registered
models and endpoints ``console.permissions.visible`` lets them view, deploy, call and manage.

Run it before and after a migration and compare (tests/upgrade/test_upgrade_in_place.py).
It must work on both sides of a restructure, so it only uses APIs that outlive one:
``django.apps.apps``, models looked up by label, ``console.permissions.visible`` and
``console.permissions.is_platform_admin``. Django is configured from the environment like
``manage.py`` (``DJANGO_SETTINGS_MODULE``, default ``console.settings``; ``DATABASE_URL``,
else the SQLite file under ``CONSOLE_VAR_DIR``).

Grants may expire (the demo gives bob a three-day grant), so the answers are computed with
the clock frozen at ``--at`` (time_machine), not at whatever time the script runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Run as a script, Python puts tests/upgrade first on sys.path: the checkout's packages must win.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

GLOBAL_PERMISSIONS = ("console.administer_platform", "console.ingest_logs", "audit.view_auditevent")
ACTIONS = ("view", "deploy", "infer", "manage")
# Protected model label -> the fields naming one of its rows (joined with "/").
PROTECTED_MODELS = {
    "endpoints.Project": ("name",),
    "endpoints.RegisteredModel": ("project__name", "name"),
    "endpoints.Endpoint": ("project__name", "name"),
}


def row_counts() -> dict[str, int]:
    """Rows per concrete model (proxies share their parent's table and are left out)."""
    from django.apps import apps

    counts = {}
    for model in apps.get_models(include_auto_created=True):
        if model._meta.proxy or not model._meta.managed:
            continue
        counts[model._meta.label] = model._base_manager.count()
    return dict(sorted(counts.items()))


def persona_answers() -> dict[str, dict]:
    """What the permission layer answers for every user, at the current (frozen) time."""
    from django.apps import apps
    from django.conf import settings

    from console.permissions import is_platform_admin, visible

    User = apps.get_model(settings.AUTH_USER_MODEL)
    answers = {}
    for user in User._base_manager.order_by("username"):
        visible_keys = {}
        for label, key_fields in PROTECTED_MODELS.items():
            model = apps.get_model(label)
            visible_keys[label] = {
                action: sorted("/".join(row) for row in
                               visible(model._default_manager.all(), user, action).values_list(*key_fields))
                for action in ACTIONS
            }
        answers[user.username] = {
            "is_platform_admin": is_platform_admin(user),
            "has_perm": {perm: user.has_perm(perm) for perm in GLOBAL_PERMISSIONS},
            "visible": visible_keys,
        }
    return answers


def snapshot(at: datetime) -> dict:
    import time_machine

    counts = row_counts()
    with time_machine.travel(at, tick=False):
        personas = persona_answers()
    return {"at": at.isoformat(), "counts": counts, "personas": personas}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--at", required=True, type=datetime.fromisoformat,
                        help="ISO-8601 instant with a UTC offset, e.g. 2025-01-01T12:00:00+00:00")
    args = parser.parse_args(argv)
    if args.at.tzinfo is None:
        parser.error("--at needs a UTC offset (grants expire at absolute instants)")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
    import django

    django.setup()
    json.dump(snapshot(args.at), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
