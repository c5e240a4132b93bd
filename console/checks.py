"""Django system checks of the framework: the encryption keys can read what is stored.

Runs with the checks ``migrate`` performs (and ``manage.py check --database default``), so a
wrong ``CONSOLE_ENCRYPTION_KEYS`` stops ``make run`` and a deployment's migrate job with a
message naming the variable. The web and worker processes verify again as they start
(``console.wsgi``, ``console.celery``).
"""

from __future__ import annotations

from django.core.checks import Error, register
from django.core.exceptions import ImproperlyConfigured

from console import crypto


@register("database")
def encryption_keys_check(app_configs=None, databases=None, **kwargs):
    if not databases or "default" not in databases:
        return []
    try:
        crypto.verify_keys()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="console.E101", hint="See docs/storage.md, 'Encryption keys'.")]
    return []
