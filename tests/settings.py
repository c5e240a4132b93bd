"""Settings for the test suite: pytest's DJANGO_SETTINGS_MODULE (pyproject.toml).

The console's own settings (console/settings.py) know nothing of tests. This module gives them
what a test run needs through the same environment variables an operator would set, then
overrides the few values that only make sense under test. It lives with the tests, so no
installed console can be started with it.

Subprocesses that tests start inherit DJANGO_SETTINGS_MODULE and the variables set here; a test
that needs the production settings in a subprocess (a real Celery worker, the start-up checks
of tests/console/test_settings.py) names console.settings and clears what it must.
"""

from __future__ import annotations

import os
import re

# Throwaway secrets: the console refuses to start without them when DEBUG is off, which is how
# the suite runs. A key set in the environment (or its _FILE) still wins.
os.environ.setdefault("SECRET_KEY", "insecure-test-suite-key-" + "x" * 30)
os.environ.setdefault("AUDIT_SIGNING_KEY", "insecure-test-suite-audit-signing-key")
# A fixed Fernet key for the suite (tests of rotation and wrong keys override the setting).
os.environ.setdefault("CONSOLE_ENCRYPTION_KEYS", "dGVzdC1zdWl0ZS1lbmNyeXB0aW9uLWtleS0zMmJ5dGU=")
# The test client speaks plain HTTP; TLS-only cookies and HSTS are tested with override_settings.
os.environ.setdefault("CONSOLE_TLS", "false")
# The receiver's group writer commits from a thread of its own, outside a test's transaction:
# off in the suite; the crash tests and benchmarks turn it on for their gunicorn processes.
os.environ.setdefault("AUDIT_INGEST_GROUP_COMMIT", "false")
# The same for staged allow decisions (console/access/authz/allows.py): each is committed on the
# check's own connection in the suite; the crash tests turn the group writer on.
os.environ.setdefault("AUTHZ_ALLOW_GROUP_COMMIT", "false")
# The allow journal's shipper thread writes outside a test's transaction: off in the suite (each
# allow is committed on the check's connection); its tests and the crash tests turn it on.
os.environ.setdefault("AUTHZ_ALLOW_JOURNAL_DIR", "")
# The access-version poll thread reads outside a test's transaction: off in the suite (each
# check reads the version itself); the crash tests and benchmarks run it in their processes.
os.environ.setdefault("AUTHZ_VERSION_POLL_MS", "0")


def _redis_url_for_this_worker() -> None:
    """Under pytest-xdist each worker gets a Redis database of its own: the configured number
    plus the worker's index (gw0 keeps it, gw1 takes the next, …). Tests flush the cache and
    purge the Celery queues, which must not reach another worker's keys. REDIS_URL itself is
    rewritten so that subprocesses (Celery workers) and tests reading it use the same database;
    the configured URL is kept in CONSOLE_TEST_REDIS_URL, so a second import computes the same."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    base = os.environ.get("CONSOLE_TEST_REDIS_URL") or os.environ.get("REDIS_URL")
    if not base or not worker.startswith("gw"):
        return
    os.environ["CONSOLE_TEST_REDIS_URL"] = base
    match = re.fullmatch(r"(?P<server>rediss?://[^/?#]*)(?:/(?P<db>\d*))?", base)
    if match is None:
        raise RuntimeError(f"REDIS_URL={base!r}: the test settings expect redis://host:port/db")
    database = int(match["db"] or 0) + int(worker[2:])
    os.environ["REDIS_URL"] = f"{match['server']}/{database}"


_redis_url_for_this_worker()

from console.settings import *  # noqa: E402, F403

# Password hashing is deliberately slow; the suite hashes thousands of test passwords.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# Static files straight from the finders: no collectstatic, no manifest. WhiteNoise looks a
# file up when it is asked for (as under DEBUG) instead of listing every static file, plotly's
# bundle included, each time a middleware chain is built: once per test client, ~50 ms each.
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

# django-axes announces itself at start-up (INFO). Under pytest-xdist the controller runs no
# test that would collect that line, so pytest prints it after the summary, as the last line.
LOGGING = {
    **LOGGING,  # noqa: F405
    "loggers": {**LOGGING["loggers"], "axes.apps": {"level": "WARNING"}},  # noqa: F405
}

# The suite reuses primary keys (rolled-back transactions) and the cache outlives a test, so
# rate limits would count one test's requests against the next: off here, and turned on by the
# tests of rate limiting (tests/console/test_throttling.py) with override_settings.
API_RATE_LIMIT_TOKEN = ""
API_RATE_LIMIT_USER = ""
