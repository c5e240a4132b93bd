"""Settings for Inference Console, read from the environment (12-factor).

Defaults make a local run work with no services at all: SQLite and the Celery filesystem
broker under ``var/``. ``DATABASE_URL`` and ``REDIS_URL`` switch to PostgreSQL and Redis.
Secrets may come from ``<NAME>_FILE``. See README.md for the full table. The test suite runs
with ``tests/settings.py``, which imports these and overrides what tests need.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from console import env

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env.string("CONSOLE_VAR_DIR", str(BASE_DIR / "var"))).resolve()

DEBUG = env.boolean("DEBUG", False)

SECRET_KEY = env.string("SECRET_KEY")
if not SECRET_KEY:
    if DEBUG:
        # Only for local development; never used when DEBUG is off.
        SECRET_KEY = "insecure-local-development-key-do-not-use-in-production"  # noqa: S105
    else:
        raise ImproperlyConfigured(
            "SECRET_KEY is required when DEBUG is off: set SECRET_KEY or SECRET_KEY_FILE "
            "(for a local demo, `make run` generates one under var/)."
        )

ALLOWED_HOSTS = env.string_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.string_list("CSRF_TRUSTED_ORIGINS", [])

# Public base URL of the console, used in links that leave the browser (ingest URLs handed
# to KServe's payload logger, the "how to call it" panel).
CONSOLE_BASE_URL = env.string("CONSOLE_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
# Where KServe's payload logger (inside the cluster) reaches the console's ingest receiver.
CONSOLE_INGEST_BASE_URL = env.string("CONSOLE_INGEST_BASE_URL", CONSOLE_BASE_URL).rstrip("/")
# Distinguishes objects this console applied from those of another console on the same cluster.
CONSOLE_INSTANCE = env.string("CONSOLE_INSTANCE", "default")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "axes",
    "csp",
    # Layers, lowest first (docs/architecture.md): framework, audit trail, domain, access
    # control, portal. A module imports only from its own layer and those listed before it.
    "console",
    "audit",
    "endpoints",
    "monitoring",
    "console.access",
    "console.portal",
]

MIDDLEWARE = [
    # The payload-logger receiver, answered before everything below (audit/middleware.py): the
    # busiest route by far, for clients with no session, cookie or browser.
    "audit.middleware.IngestReceiverMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "console.middleware.RequestContextMiddleware",
    # Any error under /api/ that is not JSON leaves as the API's error body (console/api/errors.py).
    "console.api.errors.ApiErrorBodyMiddleware",
    # Envoy ext_authz checks are answered here, before sessions, CSRF and host validation
    # (they carry the inference host, not the console's): console/access/authz/.
    "console.access.authz.http.AuthzMiddleware",
    # /metrics likewise: Prometheus scrapes by pod address, with a token (console/metrics.py).
    "console.metrics.MetricsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Gateway sign-in (TRUSTED_HEADER_ENABLED; does nothing when off): console/access/gateway.py.
    "console.access.gateway.TrustedHeaderMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # A change saved while the broker is down says "queued" instead of failing (console/celery.py).
    "console.middleware.QueuedWorkMiddleware",
    # Re-checks sessions signed in through OpenID Connect at the provider (console/access/oidc.py).
    "console.access.oidc.OIDCRecheckMiddleware",
    # Idempotency-Key on API writes: a retry replays the first answer (console/api/idempotency.py).
    "console.api.idempotency.IdempotencyMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Axes must come last: it turns a locked-out login into its own response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "console.portal.urls"
# A CSRF failure under /api/ answers the API's JSON error body (console/views).
CSRF_FAILURE_VIEW = "console.views.csrf_failure"
WSGI_APPLICATION = "console.wsgi.application"
ASGI_APPLICATION = "console.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "console.context_processors.navigation",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------
DATABASE_URL = env.string("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)
    }
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "console.sqlite3",
            "OPTIONS": {
                # Web, worker and beat write at once: WAL lets readers run beside the writer,
                # IMMEDIATE takes the write lock at BEGIN so two writers queue (busy timeout)
                # instead of failing with "database is locked" half-way through a transaction.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and Celery ---------------------------------------------------------------------
REDIS_URL = env.string("REDIS_URL")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Inference authorization decisions (console/access/authz/) have a cache of their own: Redis when
# configured (shared by every web process), else a per-process LocMem big enough for the
# working set (invalidation then goes through a version row in the database).
AUTHZ_CACHE_ALIAS = "authz"
AUTHZ_DECISION_TTL = env.integer("AUTHZ_DECISION_TTL", 5, minimum=0)
# Each authorizer process re-reads the access version this often (a thread), so a warm check
# reads neither the database nor the cache; a change made elsewhere reaches it within this
# time (a change made in the same process at once). 0: every check reads the version itself.
AUTHZ_VERSION_POLL_MS = env.integer("AUTHZ_VERSION_POLL_MS", 100, minimum=0)
# Where Envoy sends checks (the extension provider's pathPrefix) and, for gateways that route
# by path (KServe's ingress pathTemplate), the prefix naming an endpoint.
AUTHZ_PATH_PREFIX = env.string("AUTHZ_PATH_PREFIX", "/authz/check")
AUTHZ_PATH_TEMPLATE = env.string("AUTHZ_PATH_TEMPLATE", "/serving/{namespace}/{name}")
# Every allowed inference call is committed (a StagedAllow row) before it is answered; the
# process's group writer lets concurrent checks share one commit (off: one commit per check).
# A worker drains the rows into infer.allow events (one per principal, endpoint and minute, with
# the count) every AUTHZ_ALLOW_DRAIN_SECONDS (console/access/authz/allows.py).
AUTHZ_ALLOW_GROUP_COMMIT = env.boolean("AUTHZ_ALLOW_GROUP_COMMIT", True)
# Committers (each with its own database connection) per authorizer process. One by default:
# checks that arrive while it commits share its next commit (measured on 2 cores, 8 checks in
# flight: half the commits of two committers, +12–15 % checks/s, p99 at 2,000/s 15 → 3.7 ms;
# docs/performance.md). More keep several commits in flight, for slow synchronous flushes.
AUTHZ_ALLOW_WRITERS = env.integer("AUTHZ_ALLOW_WRITERS", 1, minimum=1)
# Off (default): the allow's commit does not wait for PostgreSQL's WAL flush — it survives a
# crash of the authorizer, workers and broker and a clean database restart, not a crash of the
# database server itself (its last ~0.6 s). On: every allow waits for the flush as well
# (docs/access-control.md, "Durable allow decisions").
AUTHZ_ALLOW_SYNCHRONOUS_COMMIT = env.boolean("AUTHZ_ALLOW_SYNCHRONOUS_COMMIT", False)
AUTHZ_ALLOW_DRAIN_SECONDS = env.integer("AUTHZ_ALLOW_DRAIN_SECONDS", 10, minimum=1)
# The allow journal (console/access/authz/journal.py): each authorizer process makes an allow
# durable by copying a line into a file of its own in this directory and ships the file into the
# database every AUTHZ_ALLOW_SHIP_MS, instead of committing every allow before answering
# (measured on 2 cores: the gRPC check 51 % → 64 % of a bare server's rate, the lean HTTP app
# 37 % → 67 %; docs/performance.md). A volume of the
# pod in Kubernetes (deploy/): it must outlive a container restart. Empty: commit every allow.
AUTHZ_ALLOW_JOURNAL_DIR = env.string("AUTHZ_ALLOW_JOURNAL_DIR", str(VAR_DIR / "authz-journal"))
AUTHZ_ALLOW_SHIP_MS = env.integer("AUTHZ_ALLOW_SHIP_MS", 200, minimum=1)
# A process refuses allows (503) when this much is journaled and not yet shipped (the database
# has been unreachable for a while): ~1.7 million allows at the default.
AUTHZ_ALLOW_JOURNAL_MAX_BYTES = env.integer("AUTHZ_ALLOW_JOURNAL_MAX_BYTES", 256 << 20, minimum=4096)
# Each journal file is allocated at this size (and mapped); a full one is replaced by a new one.
AUTHZ_ALLOW_JOURNAL_ROTATE_BYTES = env.integer("AUTHZ_ALLOW_JOURNAL_ROTATE_BYTES", 16 << 20, minimum=4096)
CACHES[AUTHZ_CACHE_ALIAS] = (
    {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL, "KEY_PREFIX": "authz"}
    if REDIS_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "authz",
          "OPTIONS": {"MAX_ENTRIES": env.integer("AUTHZ_CACHE_ENTRIES", 100_000, minimum=100)}}
)

CELERY_BROKER_URL = REDIS_URL or "filesystem://"
# Reliability policy in one place (console/celery.py encodes the per-task part):
# soft time limit < hard time limit < broker visibility timeout, so a task is always killed
# before the broker hands it to another worker.
CELERY_TASK_SOFT_TIME_LIMIT = env.integer("CELERY_TASK_SOFT_TIME_LIMIT", 240, minimum=1)
CELERY_TASK_TIME_LIMIT = env.integer("CELERY_TASK_TIME_LIMIT", 300, minimum=2)
CELERY_VISIBILITY_TIMEOUT = env.integer("CELERY_VISIBILITY_TIMEOUT", 3600, minimum=3)
if not CELERY_TASK_SOFT_TIME_LIMIT < CELERY_TASK_TIME_LIMIT < CELERY_VISIBILITY_TIMEOUT:
    raise ImproperlyConfigured(
        "Celery limits must satisfy CELERY_TASK_SOFT_TIME_LIMIT < CELERY_TASK_TIME_LIMIT "
        "< CELERY_VISIBILITY_TIMEOUT"
    )
if REDIS_URL:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
        # Sweep for messages of dead workers every 10 s (kombu otherwise scans only every
        # tenth sweep, delaying redelivery by minutes beyond the visibility timeout).
        "unacked_restore_throttle": 1,
    }
else:
    _broker_dir = VAR_DIR / "broker"
    # kombu's filesystem transport, with messages written atomically (console/broker.py).
    CELERY_BROKER_TRANSPORT = "console.broker:Transport"
    # kombu's filesystem transport does not create its folders.
    for _folder in ("queue", "processed", "control"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        # kombu polls the folder once a second by default: one task per second per free
        # worker process, far too slow once the demo's payload logger posts events.
        "polling_interval": 0.1,
    }
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Two queues: "celery" for the console's own work (reconcile, status, grants, seals) and
# "ingest" for log intake, which comes in bursts (a busy endpoint's payload logger). A worker
# consumes both by default, in turn, so a backlog of logger events never delays a deploy;
# large installations can run dedicated workers with `-Q ingest`.
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_QUEUES = (Queue("celery"), Queue("ingest"))
CELERY_TASK_ROUTES = {"audit.tasks.process_ingest_batch_task": {"queue": "ingest"}}
CELERY_TASK_ALWAYS_EAGER = env.boolean("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_TIMEZONE = "UTC"
# Periodic tasks (Celery beat).
RECONCILE_INTERVAL_SECONDS = env.integer("RECONCILE_INTERVAL_SECONDS", 30, minimum=5)
# A reconcile pass deletes at most this many orphaned InferenceServices; more raises an alert.
RECONCILE_MAX_DELETIONS = env.integer("RECONCILE_MAX_DELETIONS", 10, minimum=0)
# What each cluster can do (KServe release, Knative limits, runtimes) is re-read when older than
# this; also before a plan. "Test connection" on the cluster page reads it at once.
CLUSTER_CAPABILITIES_MAX_AGE = env.integer("CLUSTER_CAPABILITIES_MAX_AGE", 600, minimum=10)
CELERY_BEAT_SCHEDULE: dict = {
    "reconcile-all": {"task": "endpoints.tasks.reconcile_all_task", "schedule": float(RECONCILE_INTERVAL_SECONDS)},
    "cluster-capabilities": {"task": "endpoints.tasks.refresh_cluster_capabilities_task",
                             "schedule": float(max(CLUSTER_CAPABILITIES_MAX_AGE // 2, 10))},
    # Access already ends at a grant's expiry; this removes the expired rows and audits it.
    "grants-expire": {"task": "console.access.tasks.grants_expire_task", "schedule": 60.0},
    "grants-expiring-notify": {"task": "console.access.tasks.grants_expiring_notify_task", "schedule": 3600.0},
    # Notification deliveries whose task could not be published (broker down) are queued again.
    "notifications-requeue-lost": {"task": "endpoints.tasks.requeue_lost_notifications_task", "schedule": 300.0},
    # A heartbeat through the shared queue: some worker consumes (console/heartbeats.py); each
    # worker also sends one to its own queue (console/celery.py), which its liveness probe reads.
    "worker-heartbeat": {"task": "console.tasks.worker_heartbeat_task", "schedule": 15.0},
}
# Worker and beat liveness (console/heartbeats.py, console/liveness.py, docs/operations.md).
# Heartbeats older than these make /readyz answer 503 naming worker or beat, and show as stale
# on the admin overview. A worker all of whose processes are busy longer than its limit shows
# stale too; only the liveness probe's limit (CELERY_TASK_TIME_LIMIT + 60) restarts a worker.
WORKER_HEARTBEAT_MAX_AGE = env.integer("WORKER_HEARTBEAT_MAX_AGE", 120, minimum=15)
BEAT_HEARTBEAT_MAX_AGE = env.integer("BEAT_HEARTBEAT_MAX_AGE", 60, minimum=20)
# Per-host heartbeat files for the probes and `make run`'s watchdog (an emptyDir in Kubernetes).
HEARTBEAT_DIR = Path(env.string("HEARTBEAT_DIR", str(VAR_DIR / "heartbeat")))

# --- Authentication -----------------------------------------------------------------------
AUTH_USER_MODEL = "console.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "console.auth.ConsoleModelBackend",
    # Sessions of people signed in through OpenID Connect (no password check of its own).
    "console.access.oidc.OIDCSessionBackend",
    # Object permissions answer through the chokepoint (grant expiry and project inheritance
    # included). Guardian's own backend is not installed: it would ignore both.
    "console.access.backends.GrantPermissionBackend",
]
# Guardian's tables are the grant index; its backend is deliberately not installed (see above).
SILENCED_SYSTEM_CHECKS = ["guardian.W001"]
# Guardian: no anonymous user row. Anonymous visitors are refused before any object check.
ANONYMOUS_USER_NAME = None
GUARDIAN_RAISE_403 = False

# --- Directory sign-in: LDAP / Active Directory (console/access/ldap.py; docs/access-control.md)
# Off unless LDAP_SERVER_URI is set (ldap://, ldaps://; several servers separated by spaces).
LDAP_SERVER_URI = env.string("LDAP_SERVER_URI", "").strip()
# The name people's links are kept under (ExternalIdentity.issuer): the server URI unless set,
# so a move from ldap:// to ldaps:// or to another server keeps everyone's account.
LDAP_ISSUER = env.string("LDAP_ISSUER", "").strip() or LDAP_SERVER_URI
LDAP_BIND_DN = env.string("LDAP_BIND_DN", "")
LDAP_BIND_PASSWORD = env.string("LDAP_BIND_PASSWORD", "")  # or LDAP_BIND_PASSWORD_FILE
# Find people by search (base + filter, %(user)s is the typed user name) or by a DN template.
LDAP_USER_SEARCH_BASE = env.string("LDAP_USER_SEARCH_BASE", "")
LDAP_USER_SEARCH_FILTER = env.string("LDAP_USER_SEARCH_FILTER", "(uid=%(user)s)")
LDAP_USER_DN_TEMPLATE = env.string("LDAP_USER_DN_TEMPLATE", "")
# The console user name of a new person: this attribute of their entry (uid, sAMAccountName),
# or the name they typed (lower case) when empty.
LDAP_USERNAME_ATTR = env.string("LDAP_USERNAME_ATTR", "")
LDAP_EMAIL_ATTR = env.string("LDAP_EMAIL_ATTR", "mail")
LDAP_FIRST_NAME_ATTR = env.string("LDAP_FIRST_NAME_ATTR", "givenName")
LDAP_LAST_NAME_ATTR = env.string("LDAP_LAST_NAME_ATTR", "sn")
# Groups: where to look and how membership is stored (groupOfNames, groupOfUniqueNames,
# posixGroup, nestedGroupOfNames, activeDirectory — nested, member attribute).
LDAP_GROUP_SEARCH_BASE = env.string("LDAP_GROUP_SEARCH_BASE", "")
LDAP_GROUP_TYPE = env.choice("LDAP_GROUP_TYPE", "groupofnames",
                             ("groupofnames", "groupofuniquenames", "posixgroup", "nestedgroupofnames",
                              "activedirectory"))
LDAP_GROUP_SEARCH_FILTER = env.string("LDAP_GROUP_SEARCH_FILTER", "")  # default: by group type
LDAP_START_TLS = env.boolean("LDAP_START_TLS", False)
LDAP_CA_FILE = env.string("LDAP_CA_FILE", "")
LDAP_TIMEOUT_SECONDS = env.integer("LDAP_TIMEOUT_SECONDS", 5, minimum=1)
# The periodic pass that re-reads every LDAP-linked person (groups, lock, removal).
LDAP_SYNC_SECONDS = env.integer("LDAP_SYNC_SECONDS", 900, minimum=30)
if LDAP_SERVER_URI:
    CELERY_BEAT_SCHEDULE["ldap-sync"] = {"task": "console.access.tasks.ldap_sync_task",
                                         "schedule": float(LDAP_SYNC_SECONDS)}
if LDAP_SERVER_URI:
    try:
        import django_auth_ldap  # noqa: F401
        import ldap  # noqa: F401
    except ImportError:
        raise ImproperlyConfigured("LDAP_SERVER_URI is set but the LDAP client is not installed: "
                                   "pip install 'inference-console[ldap]' (needs libldap2-dev and libsasl2-dev)."
                                   ) from None
    if not (LDAP_USER_SEARCH_BASE or LDAP_USER_DN_TEMPLATE):
        raise ImproperlyConfigured("LDAP_SERVER_URI is set: set LDAP_USER_SEARCH_BASE (with LDAP_USER_SEARCH_FILTER) "
                                   "or LDAP_USER_DN_TEMPLATE so the console can find people's entries.")
    if not LDAP_GROUP_SEARCH_BASE:
        raise ImproperlyConfigured("LDAP_SERVER_URI is set: set LDAP_GROUP_SEARCH_BASE (where the groups mapped to "
                                   "teams live).")
    if LDAP_CA_FILE and not Path(LDAP_CA_FILE).is_file():
        raise ImproperlyConfigured(f"LDAP_CA_FILE={LDAP_CA_FILE!r} is not a readable file.")

# --- Trusted header from a gateway (oauth2-proxy, Knox): console/access/gateway.py -----------
# Opt-in. The header is believed only from a TCP peer (REMOTE_ADDR, never X-Forwarded-For) on
# TRUSTED_HEADER_PROXIES; from anywhere else a request carrying it is refused and audited.
TRUSTED_HEADER_ENABLED = env.boolean("TRUSTED_HEADER_ENABLED", False)
TRUSTED_HEADER_USER = env.string("TRUSTED_HEADER_USER", "X-Forwarded-User").strip()
TRUSTED_HEADER_EMAIL = env.string("TRUSTED_HEADER_EMAIL", "X-Forwarded-Email").strip()
TRUSTED_HEADER_GROUPS = env.string("TRUSTED_HEADER_GROUPS", "X-Forwarded-Groups").strip()
TRUSTED_HEADER_ISSUER = env.string("TRUSTED_HEADER_ISSUER", "gateway").strip()
TRUSTED_HEADER_PROXIES = env.string_list("TRUSTED_HEADER_PROXIES", [])
if TRUSTED_HEADER_ENABLED:
    import ipaddress

    if not TRUSTED_HEADER_PROXIES:
        raise ImproperlyConfigured("TRUSTED_HEADER_ENABLED is on: set TRUSTED_HEADER_PROXIES to the gateway's "
                                   "addresses or networks (e.g. 10.0.5.0/24).")
    for _proxy in TRUSTED_HEADER_PROXIES:
        try:
            ipaddress.ip_network(_proxy, strict=False)
        except ValueError:
            raise ImproperlyConfigured(f"TRUSTED_HEADER_PROXIES: {_proxy!r} is not an address or network.") from None
    if not TRUSTED_HEADER_USER or not TRUSTED_HEADER_ISSUER:
        raise ImproperlyConfigured("TRUSTED_HEADER_USER and TRUSTED_HEADER_ISSUER must not be empty.")

# Sign-in modes beside local passwords; each backend also answers for its sessions, so turning
# a mode off ends the sessions it opened.
if LDAP_SERVER_URI:
    AUTHENTICATION_BACKENDS.append("console.access.ldap.LdapBackend")
if TRUSTED_HEADER_ENABLED:
    AUTHENTICATION_BACKENDS.append("console.access.gateway.TrustedHeaderBackend")

# Password sign-in for everyone ("everyone", the default) or only for break-glass admins
# ("admins": superusers and Platform admins) once people sign in through an identity provider.
LOCAL_PASSWORD_SIGN_IN = env.choice("LOCAL_PASSWORD_SIGN_IN", "everyone", ("everyone", "admins"))

# --- OpenID Connect sign-in (console/access/oidc.py; docs/access-control.md) ----------------
# Off unless a discovery document and a client id are given. The secret may come from a file
# (OIDC_CLIENT_SECRET_FILE, a mounted Kubernetes secret).
OIDC_DISCOVERY_URL = env.string("OIDC_DISCOVERY_URL", "")
OIDC_CLIENT_ID = env.string("OIDC_CLIENT_ID", "")
OIDC_CLIENT_SECRET = env.string("OIDC_CLIENT_SECRET", "")
OIDC_PROVIDER_NAME = env.string("OIDC_PROVIDER_NAME", "your identity provider")
OIDC_SCOPES = env.string("OIDC_SCOPES", "openid profile email offline_access")
OIDC_USERNAME_CLAIM = env.string("OIDC_USERNAME_CLAIM", "preferred_username")
OIDC_GROUPS_CLAIM = env.string("OIDC_GROUPS_CLAIM", "groups")
# Clock skew allowed on the ID token's exp/iat/nbf.
OIDC_CLOCK_SKEW_SECONDS = env.integer("OIDC_CLOCK_SKEW_SECONDS", 60, minimum=0)
# Each person is re-checked at the provider at least this often (refresh token, else userinfo).
OIDC_RECHECK_SECONDS = env.integer("OIDC_RECHECK_SECONDS", 900, minimum=30)
OIDC_TIMEOUT_SECONDS = env.integer("OIDC_TIMEOUT_SECONDS", 10, minimum=1)
if bool(OIDC_DISCOVERY_URL) != bool(OIDC_CLIENT_ID):
    raise ImproperlyConfigured("OIDC_DISCOVERY_URL and OIDC_CLIENT_ID go together: set both or neither")
# Re-checks OIDC identities holding a refresh token (API-token-only users included; the
# middleware re-checks browser sessions). Runs three times per interval; scheduled only when
# OIDC is configured, as the LDAP sync is.
if OIDC_DISCOVERY_URL:
    CELERY_BEAT_SCHEDULE["oidc-recheck"] = {"task": "console.access.tasks.oidc_recheck_task",
                                            "schedule": float(max(OIDC_RECHECK_SECONDS // 3, 10))}

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Login throttling (django-axes): after AXES_FAILURE_LIMIT failures for one username from one
# address, that pair is locked out for the cool-off period.
AXES_ENABLED = env.boolean("AXES_ENABLED", True)
AXES_FAILURE_LIMIT = env.integer("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env.integer("LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_LOCKOUT_TEMPLATE = "registration/lockout.html"
AXES_RESET_ON_SUCCESS = True
AXES_HTTP_RESPONSE_CODE = 429
# Number of reverse proxies in front of the console that append to X-Forwarded-For.
NUM_PROXIES = env.integer("NUM_PROXIES", 0, minimum=0)
AXES_IPWARE_PROXY_COUNT = NUM_PROXIES or None
AXES_IPWARE_META_PRECEDENCE_ORDER = ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"] if NUM_PROXIES else ["REMOTE_ADDR"]

# Sessions end after SESSION_TIMEOUT seconds (8 h by default) and when the browser closes.
SESSION_COOKIE_AGE = env.integer("SESSION_TIMEOUT", 8 * 3600, minimum=60)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True

# --- Transport security -------------------------------------------------------------------
# CONSOLE_TLS: the console is reached over HTTPS (directly or through a TLS-terminating proxy
# that sets X-Forwarded-Proto). Defaults on whenever DEBUG is off.
TLS = env.boolean("CONSOLE_TLS", not DEBUG)
SESSION_COOKIE_SECURE = TLS
CSRF_COOKIE_SECURE = TLS
if TLS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env.integer("HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_SSL_REDIRECT = env.boolean("SECURE_SSL_REDIRECT", False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^authz/"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# Content-Security-Policy: nothing from third-party origins, no inline scripts. Page data
# reaches scripts through json_script; behaviour lives in static/js.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "worker-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# --- Internationalisation, static files ----------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env.string("STATIC_ROOT", str(VAR_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
MEDIA_ROOT = VAR_DIR / "media"
WHITENOISE_USE_FINDERS = DEBUG

# --- E-mail (notifications; docs/signals.md) -----------------------------------------------
EMAIL_BACKEND = env.string("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env.string("EMAIL_HOST", "localhost")
EMAIL_PORT = env.integer("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env.string("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env.string("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env.boolean("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env.boolean("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env.integer("EMAIL_TIMEOUT", 10, minimum=1)
NOTIFICATION_FROM_EMAIL = env.string("NOTIFICATION_FROM_EMAIL", "inference-console@localhost")
# Grants ending within this many days are notified once (access app, every hour).
GRANT_EXPIRY_NOTICE_DAYS = env.integer("GRANT_EXPIRY_NOTICE_DAYS", 7, minimum=1)

# --- Prometheus metrics (console/metrics.py, docs/signals.md) ------------------------------
# Bearer token a scrape must send to /metrics; unset: /metrics answers loopback clients only.
METRICS_TOKEN = env.string("METRICS_TOKEN", "")
# The Celery worker's own /metrics port (0: none; Kubernetes sets 9808 on the worker pods).
WORKER_METRICS_PORT = env.integer("WORKER_METRICS_PORT", 0, minimum=0)

# --- API rate limits (console/api/throttling.py, docs/signals.md): "<n>/<second|minute|hour|day>",
# empty for no limit. Shared across processes when REDIS_URL is set (the default cache).
API_RATE_LIMIT_TOKEN = env.rate("API_RATE_LIMIT_TOKEN", "600/minute")
API_RATE_LIMIT_USER = env.rate("API_RATE_LIMIT_USER", "1200/minute")

# --- REST API -----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Bearer tokens first: an API call without credentials then gets 401 (WWW-Authenticate: Bearer).
        "console.access.api.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "console.api.pagination.StandardPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "console.api.schema.ConsoleAutoSchema",
    "EXCEPTION_HANDLER": "console.api.errors.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    # Rate limits per API token and per user (console/api/throttling.py; 429 with Retry-After).
    "DEFAULT_THROTTLE_CLASSES": ["console.api.throttling.TokenRateThrottle",
                                 "console.api.throttling.UserRateThrottle"],
}
# Idempotency-Key (console/api/idempotency.py): how long a write's answer is kept for retries,
# and after how long a first request that never finished no longer blocks its retries (409).
IDEMPOTENCY_KEY_TTL_SECONDS = env.integer("IDEMPOTENCY_KEY_TTL_SECONDS", 24 * 3600, minimum=60)
IDEMPOTENCY_PENDING_SECONDS = env.integer("IDEMPOTENCY_PENDING_SECONDS", 300, minimum=10)
CELERY_BEAT_SCHEDULE["idempotency-prune"] = {"task": "console.tasks.prune_idempotency_keys_task",
                                             "schedule": 3600.0}
SPECTACULAR_SETTINGS = {
    "TITLE": "Inference Console API",
    "DESCRIPTION": "Register models, deploy them to KServe, manage access and review the audit trail.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Swagger UI otherwise loads a badge from validator.swagger.io on any non-localhost host.
    "SWAGGER_UI_SETTINGS": {"validatorUrl": None},
    "COMPONENT_SPLIT_REQUEST": True,
    # Error answers (400/401/403/404/409/422/429 with the one error body) and the Idempotency-Key
    # header on writes, added to every operation (console/api/schema.py).
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums",
                             "console.api.schema.add_error_responses"],
    # Several components have a "role" field; the grant roles get a stable name.
    "ENUM_NAME_OVERRIDES": {"GrantRoleEnum": "console.access.models.Grant.Role",
                            "IdentitySourceEnum": "console.access.models.IdentitySource"},
}

# --- Logging ------------------------------------------------------------------------------
LOG_LEVEL = env.string("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # Ingest keys (in payload-logger URLs) never reach a log line (console/redaction.py).
    "filters": {"redact_ingest_keys": {"()": "console.redaction.RedactIngestKeys"},
                # A 403/404/400 is one line; a 500 keeps its traceback (console/log_filters.py).
                "client_errors_one_line": {"()": "console.log_filters.ClientErrorsWithoutTraceback"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain",
                             "filters": ["redact_ingest_keys"]}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "INFO"}, "kubernetes": {"level": "WARNING"},
                "django.request": {"filters": ["client_errors_one_line"]}},
}

# --- Encryption at rest (console/crypto.py) ---------------------------------------------------
# Fernet keys for secret values stored in the database (storage-connection credentials), first
# key encrypts, all decrypt. Required when DEBUG is off; a DEBUG run without keys derives one from
# SECRET_KEY. `make run` writes var/encryption_keys.
CONSOLE_ENCRYPTION_KEYS = env.parse_keys(env.string("CONSOLE_ENCRYPTION_KEYS"))
if not CONSOLE_ENCRYPTION_KEYS:
    if DEBUG:
        CONSOLE_ENCRYPTION_KEYS = [env.development_key(SECRET_KEY)]
    else:
        raise ImproperlyConfigured(
            "CONSOLE_ENCRYPTION_KEYS is required when DEBUG is off: set CONSOLE_ENCRYPTION_KEYS or "
            "CONSOLE_ENCRYPTION_KEYS_FILE to one or more Fernet keys (docs/storage.md)."
        )

# --- Audit trail: seals, ingest, retention (audit app; see docs/audit.md) -------------------
# Seals are HMAC-signed with a key kept outside the database. AUDIT_SIGNING_KEY (or _FILE) is the
# current key, AUDIT_SIGNING_KEY_ID its id (stored in each seal); AUDIT_SIGNING_KEYS (or _FILE)
# holds retired keys as "id=key,id=key" so seals signed before a rotation still verify.
AUDIT_SIGNING_KEY_ID = env.string("AUDIT_SIGNING_KEY_ID", "k1")
_audit_current_key = env.string("AUDIT_SIGNING_KEY")
if not _audit_current_key:
    if DEBUG:
        _audit_current_key = "insecure-local-audit-signing-key"  # noqa: S105 - local runs only
    else:
        raise ImproperlyConfigured(
            "AUDIT_SIGNING_KEY is required when DEBUG is off: set AUDIT_SIGNING_KEY or AUDIT_SIGNING_KEY_FILE "
            "(keep it outside the database; see docs/audit.md)."
        )
AUDIT_SIGNING_KEYS: dict[str, str] = {}
for _pair in env.string_list("AUDIT_SIGNING_KEYS", []):
    _key_id, _sep, _key = _pair.partition("=")
    if not _sep or not _key_id.strip() or not _key.strip():
        raise ImproperlyConfigured("AUDIT_SIGNING_KEYS must look like 'id=key,id=key'")
    AUDIT_SIGNING_KEYS[_key_id.strip()] = _key.strip()
AUDIT_SIGNING_KEYS[AUDIT_SIGNING_KEY_ID] = _audit_current_key
# Sealing: at most this many events per seal; an id gap younger than the grace period may still
# be filled by a transaction that commits late, so the sealer waits that long before treating
# the gap as permanent.
AUDIT_SEAL_INTERVAL_SECONDS = env.integer("AUDIT_SEAL_INTERVAL_SECONDS", 60, minimum=1)
AUDIT_SEAL_MAX_EVENTS = env.integer("AUDIT_SEAL_MAX_EVENTS", 1000, minimum=1)
AUDIT_SEAL_GRACE_SECONDS = env.integer("AUDIT_SEAL_GRACE_SECONDS", 900, minimum=0)
# Ingest receivers: bodies above these sizes get 413 before they are read.
AUDIT_K8S_MAX_BODY_BYTES = env.integer("AUDIT_K8S_MAX_BODY_BYTES", 32 * 1024 * 1024, minimum=1024)
AUDIT_KSERVE_MAX_BODY_BYTES = env.integer("AUDIT_KSERVE_MAX_BODY_BYTES", 16 * 1024 * 1024, minimum=1024)
AUDIT_INGEST_MAX_ATTEMPTS = env.integer("AUDIT_INGEST_MAX_ATTEMPTS", 5, minimum=1)
# Both receivers read a body within a deadline and at a minimum rate (after a short grace):
# a client that declares a body and trickles it gets 408 instead of holding the receiver.
AUDIT_INGEST_BODY_TIMEOUT_SECONDS = env.integer("AUDIT_INGEST_BODY_TIMEOUT_SECONDS", 60, minimum=1)
AUDIT_INGEST_BODY_MIN_BYTES_PER_SECOND = env.integer("AUDIT_INGEST_BODY_MIN_BYTES_PER_SECOND", 16 * 1024, minimum=1)
AUDIT_INGEST_BODY_GRACE_SECONDS = 2.0
# JSON nested deeper than this (arrays and objects) is refused with 400 before it is parsed.
AUDIT_INGEST_MAX_JSON_DEPTH = env.integer("AUDIT_INGEST_MAX_JSON_DEPTH", 100, minimum=8)
# A request event whose response has not arrived after this long is dispatched as "timeout".
AUDIT_PAIRING_TIMEOUT_SECONDS = env.integer("AUDIT_PAIRING_TIMEOUT_SECONDS", 300, minimum=1)
# The payload-logger buffer (audit/buffer.py): beyond this many waiting deliveries the receiver
# answers 503 + Retry-After (0: no limit); workers take this many per transaction.
AUDIT_INGEST_BUFFER_MAX_DEPTH = env.integer("AUDIT_INGEST_BUFFER_MAX_DEPTH", 200_000, minimum=0)
AUDIT_INGEST_RETRY_AFTER_SECONDS = env.integer("AUDIT_INGEST_RETRY_AFTER_SECONDS", 5, minimum=1)
AUDIT_INGEST_DRAIN_BATCH = env.integer("AUDIT_INGEST_DRAIN_BATCH", 500, minimum=1)
# Receiver threads of a process share commits (one writer thread inserts the rows of every request
# waiting at that moment): the commit's WAL flush is what a 202 waits for.
AUDIT_INGEST_GROUP_COMMIT = env.boolean("AUDIT_INGEST_GROUP_COMMIT", True)
# Writer threads per receiver process: several commits in flight (PostgreSQL flushes concurrent
# commits together), each taking every row waiting when it starts.
AUDIT_INGEST_WRITERS = env.integer("AUDIT_INGEST_WRITERS", 4, minimum=1)
# The integrity page verifies trails of more sealed events than this in a worker, with progress.
AUDIT_VERIFY_INLINE_EVENTS = env.integer("AUDIT_VERIFY_INLINE_EVENTS", 100_000, minimum=0)
# Processes that verify the seals' events in parallel on PostgreSQL (0: one per CPU; 1: none).
# Used where the verifying process may fork (one thread, not a daemon such as a Celery worker child).
AUDIT_VERIFY_PROCESSES = env.integer("AUDIT_VERIFY_PROCESSES", 0, minimum=0)
# How long a receiver process trusts what it read: an ingest key's project (so a rotated key is
# refused within this time; at most 1 s) and the buffer depth.
AUDIT_INGEST_KEY_CACHE_SECONDS = 1.0
AUDIT_INGEST_DEPTH_CACHE_SECONDS = 1.0
# Refusals are added to their counters at most this often per process, and audited
# (ingest.refuse) at most once per project and this many seconds.
AUDIT_INGEST_REFUSAL_FLUSH_SECONDS = 1.0
AUDIT_INGEST_REFUSAL_AUDIT_SECONDS = env.integer("AUDIT_INGEST_REFUSAL_AUDIT_SECONDS", 300, minimum=0)
# Paired inference events go to these callables (dotted paths), each called with a list of
# audit.inference.InferencePair inside the transaction that marks the events dispatched.
INFERENCE_EVENT_CONSUMERS: list[str] = [
    "audit.consumers.record_inference_io",
]
# Retention: events older than this many days are pruned once sealed and archived (0: keep).
AUDIT_RETENTION_DAYS = env.integer("AUDIT_RETENTION_DAYS", 365, minimum=0)
# Archive: Apache Iceberg tables (pyiceberg SQL catalog). Catalog URI "" = SQLite file under
# var/, "database" = the console's own database; the warehouse is a local path or object-store URI.
AUDIT_ARCHIVE_CATALOG_URI = env.string("AUDIT_ARCHIVE_CATALOG_URI", "")
AUDIT_ARCHIVE_WAREHOUSE = env.string("AUDIT_ARCHIVE_WAREHOUSE", str(VAR_DIR / "audit-archive" / "warehouse"))
AUDIT_ARCHIVE_NAMESPACE = env.string("AUDIT_ARCHIVE_NAMESPACE", "console_audit")
CELERY_BEAT_SCHEDULE.update({
    "audit-seal": {"task": "audit.tasks.seal_events_task", "schedule": float(AUDIT_SEAL_INTERVAL_SECONDS)},
    "audit-ingest-retry": {"task": "audit.tasks.retry_ingest_batches_task", "schedule": 60.0},
    "audit-pairing-timeout": {"task": "audit.tasks.sweep_inference_pairs_task", "schedule": 60.0},
    # A safety net beside the dedicated `manage.py ingest_worker` processes (and the drain under
    # `make run`): drains whatever waits in the payload-logger buffer.
    "audit-ingest-drain": {"task": "audit.tasks.drain_ingest_buffer_task", "schedule": 5.0},
    "authz-allows-drain": {"task": "console.access.tasks.drain_allows_task",
                           "schedule": float(AUTHZ_ALLOW_DRAIN_SECONDS)},
    "audit-retention": {"task": "audit.tasks.archive_and_prune_task", "schedule": 3600.0},
})

# --- Monitoring: inference records, rollups, drift, dashboards (monitoring app; docs/monitoring.md)
# Paired payload-logger events also feed monitoring's inference records.
INFERENCE_EVENT_CONSUMERS.append("monitoring.consumers.record_inference")
# Retention in days (0 keeps forever): raw records, minute rollups (dashboards use them up to a
# 24 h range), and hour rollups, live bin counts and drift results.
MONITORING_RECORD_RETENTION_DAYS = env.integer("MONITORING_RECORD_RETENTION_DAYS", 7, minimum=0)
MONITORING_MINUTE_ROLLUP_RETENTION_DAYS = env.integer("MONITORING_MINUTE_ROLLUP_RETENTION_DAYS", 3, minimum=0)
MONITORING_ROLLUP_RETENTION_DAYS = env.integer("MONITORING_ROLLUP_RETENTION_DAYS", 90, minimum=0)
MONITORING_DRIFT_INTERVAL_SECONDS = env.integer("MONITORING_DRIFT_INTERVAL_SECONDS", 60, minimum=5)
# Dashboards poll their JSON this often (seconds) while auto-refresh is on.
MONITORING_REFRESH_SECONDS = env.integer("MONITORING_REFRESH_SECONDS", 30, minimum=5)
# Optional Prometheus (KServe / Knative metrics) shown beside the logger-derived figures.
PROMETHEUS_URL = env.string("PROMETHEUS_URL", "").rstrip("/")
PROMETHEUS_TIMEOUT_SECONDS = env.integer("PROMETHEUS_TIMEOUT_SECONDS", 5, minimum=1)
CELERY_BEAT_SCHEDULE.update({
    "monitoring-drift": {"task": "monitoring.tasks.compute_drift_all_task",
                         "schedule": float(MONITORING_DRIFT_INTERVAL_SECONDS)},
    "monitoring-prune": {"task": "monitoring.tasks.prune_monitoring_task", "schedule": 3600.0},
})
# Automated canary rollouts are measured and stepped this often (docs/rollouts.md).
ROLLOUT_EVALUATION_SECONDS = env.integer("ROLLOUT_EVALUATION_SECONDS", 30, minimum=5)
CELERY_BEAT_SCHEDULE["rollout-evaluation"] = {"task": "monitoring.tasks.evaluate_rollouts_task",
                                              "schedule": float(ROLLOUT_EVALUATION_SECONDS)}
# plotly.js is served from the plotly Python package (no copy in static/, no CDN).
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "monitoring.staticfiles.PlotlyFinder",
]
