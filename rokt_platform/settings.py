"""Settings, read from the environment (see README "Configuration").

With nothing set the platform runs on an embedded default: SQLite and a file-system Celery
broker under ``var/``. ``DATABASE_URL`` (PostgreSQL) and ``CELERY_BROKER_URL`` (Redis) make it
production.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import re
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from rokt_platform.env import env_bool, env_float, env_int, env_list, env_str, env_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("ROKT_VAR_DIR", str(BASE_DIR / "var")) or BASE_DIR / "var")
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """SECRET_KEY from the environment, else one generated once and kept in var/.

    A generated key keeps the one-command demo free of set-up while never shipping a
    known key; production sets SECRET_KEY explicitly.
    """
    key = env_str("SECRET_KEY")
    if key is not None:
        if len(key) < 32:
            raise ImproperlyConfigured("SECRET_KEY is shorter than 32 characters.")
        return key
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DEBUG", False)
# Fernet keys for secrets at rest (deliveries.secrets); empty: one derived from SECRET_KEY.
ENCRYPTION_KEYS = env_list("ROKT_ENCRYPTION_KEYS", [])
for _key in ENCRYPTION_KEYS:
    try:
        _valid_key = len(base64.urlsafe_b64decode(_key.encode())) == 32
    except ValueError:
        _valid_key = False
    if not _valid_key:
        raise ImproperlyConfigured(
            "ROKT_ENCRYPTION_KEYS holds a value that is not a Fernet key (32 url-safe base64 "
            "bytes; make one with `python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'`)."
        )
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "rokt_platform.admin_site.PlatformAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "rangefilter",
    "import_export",
    "referrals.apps.ReferralsConfig",
    "customfields.apps.CustomfieldsConfig",
    "deliveries.apps.DeliveriesConfig",
    "exports.apps.ExportsConfig",
    "dashboard.apps.DashboardConfig",
    "demo.apps.DemoConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "referrals.middleware.ClientTimezoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "rokt_platform.urls"
WSGI_APPLICATION = "rokt_platform.wsgi.application"

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
            ],
        },
    },
]


def _database() -> dict:
    url = env_url(
        "DATABASE_URL",
        f"sqlite:///{VAR_DIR / 'db.sqlite3'}",
        schemes={"sqlite", "postgres", "postgresql", "pgsql"},
    )
    try:
        config = dj_database_url.parse(url, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from None
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # WAL and immediate transactions let web, worker and beat share one SQLite file
        # without "database is locked" errors under the demo's light load.
        config["CONN_MAX_AGE"] = 0
        config["OPTIONS"] = {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    else:
        config["CONN_HEALTH_CHECKS"] = True
    return config


DATABASES = {"default": _database()}
# The hottest statements (real-time sends, ingestion) prepared once per connection on
# PostgreSQL (rokt_platform.prepared); off behind a pooler in transaction mode.
DATABASE_PREPARED_STATEMENTS = env_bool("DATABASE_PREPARED_STATEMENTS", True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
# Date-times name their zone ("Dec. 3, 2026, 10:12 a.m. UTC"): rokt_platform/formats/.
FORMAT_MODULE_PATH = ["rokt_platform.formats"]
# Stored in UTC; shown in the client's time zone (referrals.middleware).
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]  # the admin's own stylesheet and icon
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # filled by collectstatic; WhiteNoise warns if it is absent
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = DEBUG

LOGIN_URL = "admin:login"
SESSION_COOKIE_HTTPONLY = True
# Messages live in the session, not in a cookie: one of them shows a new signing secret once.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
# A session ends after this long without a request (each request starts the clock again).
SESSION_COOKIE_AGE = env_int("SESSION_IDLE_MINUTES", 60, minimum=1) * 60
SESSION_SAVE_EVERY_REQUEST = True
X_FRAME_OPTIONS = "DENY"

# Production runs behind TLS (ROKT_HTTPS=true): secure cookies, HTTP redirected to HTTPS, and
# HSTS; the loopback demo runs on plain HTTP, so all of it is off by default.
HTTPS = env_bool("ROKT_HTTPS", False)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", HTTPS)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", HTTPS)
# /healthz answers probes that reach the process over plain HTTP inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 86400 if HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", HTTPS)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# A TLS-terminating proxy says a request came over HTTPS in this header, e.g. X-Forwarded-Proto
# (set it only when the proxy always sets or strips that header).
_PROXY_HEADER = env_str("SECURE_PROXY_SSL_HEADER")
if _PROXY_HEADER:
    if not re.fullmatch(r"[A-Za-z0-9-]+", _PROXY_HEADER):
        raise ImproperlyConfigured(
            "SECURE_PROXY_SSL_HEADER is a header name such as X-Forwarded-Proto."
        )
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _PROXY_HEADER.upper().replace("-", "_"), "https")

# --- REST API -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON only, as the schema says: DRF's parser, refusing text PostgreSQL cannot store with
    # a 400 naming the field. A form body answers 415.
    "DEFAULT_PARSER_CLASSES": ["referrals.api.parsers.StorableJSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    # One error shape, documented on every operation (rokt_platform/api_errors.py).
    "DEFAULT_SCHEMA_CLASS": "rokt_platform.api_errors.ContractSchema",
    "EXCEPTION_HANDLER": "rokt_platform.api_errors.exception_handler",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
}
API_DOCS_PUBLIC = env_bool("API_DOCS_PUBLIC", False)
SPECTACULAR_SETTINGS = {
    "TITLE": "Referral delivery platform API",
    "DESCRIPTION": "Ingest referrals and read them back; every endpoint is scoped to the "
    "caller's client.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and its docs page need a login (an API token or the admin's session) unless
    # API_DOCS_PUBLIC opens them.
    "SERVE_PERMISSIONS": [
        "rest_framework.permissions.AllowAny"
        if API_DOCS_PUBLIC
        else "rest_framework.permissions.IsAuthenticated"
    ],
    # Served from the installed sidecar package: the docs page needs no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Three models have a "kind": each its own enum, named after what it sorts.
    "ENUM_NAME_OVERRIDES": {
        "CustomFieldKindEnum": "customfields.models.CustomField.Kind",
        "DeliveryKindEnum": "deliveries.models.Delivery.Kind",
        "BatchKindEnum": "deliveries.models.Batch.Kind",
    },
    # The default hook names the enums (rebuilding the components), then each app's hook
    # describes what its serializers cannot say (shapes per kind), reusing the named enums;
    # their one-value "kind" enums (a oneOf's discriminator) stay inline.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "customfields.api.schema.custom_field_schemas",
        "deliveries.api.schema.delivery_bodies",
        "privacy.api.schema.erasure_schemas",
    ],
}

# Ingestion limits: a request holds at most this many records and bytes.
INGEST_MAX_RECORDS = env_int("INGEST_MAX_RECORDS", 1000, minimum=1)
INGEST_MAX_BODY_BYTES = env_int("INGEST_MAX_BODY_BYTES", 10 * 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = INGEST_MAX_BODY_BYTES

# Exports: up to this many rows (CSV, JSON) stream straight to the browser; larger ones, and
# every XLSX, are built by a worker on the "exports" queue while the page shows progress.
EXPORT_SYNC_MAX_ROWS = env_int("EXPORT_SYNC_MAX_ROWS", 100_000, minimum=0)
EXPORT_FILE_TTL_HOURS = env_int("EXPORT_FILE_TTL_HOURS", 24, minimum=1)
EXPORT_DIR = VAR_DIR / "exports"

# Retention (privacy.purge, docs/PRIVACY.md "Retention"): what the purge removes once older
# than this many days; 0 keeps it forever. Never what a delivery still owes. Referrals
# themselves: per client (Client.retention_days); export files: EXPORT_FILE_TTL_HOURS.
RETENTION_DELIVERED_ITEMS_DAYS = env_int("RETENTION_DELIVERED_ITEMS_DAYS", 90, minimum=0)
RETENTION_BATCH_ENTRIES_DAYS = env_int("RETENTION_BATCH_ENTRIES_DAYS", 90, minimum=0)
RETENTION_ATTEMPTS_DAYS = env_int("RETENTION_ATTEMPTS_DAYS", 30, minimum=0)
# Rows per short transaction, and how often beat starts a purge (one at a time).
PURGE_BATCH_SIZE = env_int("PURGE_BATCH_SIZE", 2000, minimum=1)
PURGE_EVERY_SECONDS = env_int("PURGE_EVERY_SECONDS", 3600, minimum=60)
# After each page the purge rests this many times as long as the page took (0: no rest).
PURGE_PAUSE_RATIO = env_float("PURGE_PAUSE_RATIO", 1.0, minimum=0.0)

# File deliveries: beat looks for due runs and retries this often; a delivery failing this long
# warns account managers (email through Django's mail settings, and a banner in the admin).
DELIVERY_TICK_SECONDS = env_int("DELIVERY_TICK_SECONDS", 30, minimum=1)
DELIVERY_WARN_AFTER_MINUTES = env_int("DELIVERY_WARN_AFTER_MINUTES", 30, minimum=0)
# Extra CA certificates (PEM) trusted for FTPS besides the system's, e.g. a private CA.
DELIVERY_CA_FILE = env_str("DELIVERY_CA_FILE", "") or ""
DELIVERY_WORK_DIR = VAR_DIR / "outgoing"
# Real-time API deliveries refuse private, loopback, link-local, CGNAT and metadata addresses
# (checked on the address connected to) unless a network is listed here (CIDR, comma-separated).
DELIVERY_ALLOWED_NETWORKS = env_list("DELIVERY_ALLOWED_NETWORKS", [])
for _network in DELIVERY_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperlyConfigured(
            f"DELIVERY_ALLOWED_NETWORKS: {_network!r} is not a network (e.g. 10.0.0.0/8)."
        ) from None
# The demo's webhook inbox (/demo/inbox/<delivery>/ and its admin page), which scripts/run-demo
# turns on together with DELIVERY_ALLOWED_NETWORKS=127.0.0.1/32 so that deliveries may reach
# it. Off everywhere else: the inbox stores whatever is posted to it.
DEMO_INBOX = env_bool("DEMO_INBOX", False)
# How often beat fires due API retries and re-sends items whose message or worker was lost.
DELIVERY_API_TICK_SECONDS = env_int("DELIVERY_API_TICK_SECONDS", 2, minimum=1)
# Scales every retry delay of real-time deliveries (5 s, 30 s, 2 min, 10 min, ...): 1 in
# production; the end-to-end tests shrink it to see many retries in seconds.
DELIVERY_RETRY_SCALE = env_float("DELIVERY_RETRY_SCALE", 1.0, minimum=0.0001)
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "rokt-platform@localhost")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)

# Admin lists count at most this many rows; beyond it they say "more than N".
ADMIN_COUNT_CAP = env_int("ADMIN_COUNT_CAP", 10_000, minimum=100)

# --- Login: two-factor (django-otp) and throttling (django-axes); docs/SECURITY.md ----------
# Staff log in with a password and then a code from an authenticator app (TOTP); client users
# too when their client requires it or they turned it on. referrals.two_factor holds the rule
# and the pages; until the second step is done the session is anonymous everywhere.
INSTALLED_APPS += ["django_otp", "django_otp.plugins.otp_totp", "axes"]
_AUTH_MIDDLEWARE = MIDDLEWARE.index("django.contrib.auth.middleware.AuthenticationMiddleware")
MIDDLEWARE[_AUTH_MIDDLEWARE + 1 : _AUTH_MIDDLEWARE + 1] = [
    "django_otp.middleware.OTPMiddleware",
    "referrals.two_factor.middleware.TwoFactorMiddleware",
]
MIDDLEWARE.append("axes.middleware.AxesMiddleware")  # last, as django-axes asks
AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out username+address before the password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# The name an authenticator app shows next to the code.
OTP_TOTP_ISSUER = env_str("TWO_FACTOR_ISSUER", "Referral delivery platform")
# The devices' admin (superusers) never shows a key or its QR code again.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True
# The password step is forgotten if the code does not follow within this many seconds.
TWO_FACTOR_STEP_SECONDS = 300
# This many wrong passwords or codes for one username from one address lock that pair out, for
# LOGIN_LOCKOUT_MINUTES (0: until an account manager unlocks it).
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
_LOCKOUT_MINUTES = env_int("LOGIN_LOCKOUT_MINUTES", 30, minimum=0)
AXES_COOLOFF_TIME = datetime.timedelta(minutes=_LOCKOUT_MINUTES) if _LOCKOUT_MINUTES else None
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True  # a completed login forgets that pair's earlier failures
# Masked in what axes stores and logs (the password always is): axes' own, and the codes.
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "token"]
AXES_LOCKOUT_CALLABLE = "referrals.two_factor.views.locked_out"

# --- Celery ---------------------------------------------------------------------------------
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env_url(
    "CELERY_BROKER_URL", "filesystem://", schemes={"redis", "rediss", "filesystem"}
)
CELERY_BEAT_SCHEDULE_FILE = VAR_DIR / "celerybeat-schedule"
HEALTH_BROKER_TIMEOUT = env_int("HEALTH_BROKER_TIMEOUT", 3, minimum=1)

# --- /metrics (metrics/, docs/METRICS.md) ---------------------------------------------------
# Off (404) unless a bearer token or an allowlist of networks is set; with both, both apply.
INSTALLED_APPS += ["metrics.apps.MetricsConfig"]
METRICS_TOKEN = env_str("METRICS_TOKEN", "") or ""
METRICS_ALLOWED_NETWORKS = env_list("METRICS_ALLOWED_NETWORKS", [])
for _network in METRICS_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperlyConfigured(
            f"METRICS_ALLOWED_NETWORKS: {_network!r} is not a network (e.g. 10.0.0.0/8)."
        ) from None
# Scraped like /healthz, over plain HTTP inside the network: not redirected to HTTPS.
SECURE_REDIRECT_EXEMPT += [r"^metrics$"]
# What the "recent" figures cover (attempts, batches, exports), in seconds.
METRICS_WINDOW_SECONDS = env_int("METRICS_WINDOW_SECONDS", 300, minimum=60)
# How often a worker recounts what each delivery owes, so that a scrape need not.
METRICS_BACKLOG_SECONDS = env_int("METRICS_BACKLOG_SECONDS", 15, minimum=1)

# --- Privacy (privacy/, docs/PRIVACY.md) ----------------------------------------------------
# Retention and purge, erasure on request, the access log.
INSTALLED_APPS += ["privacy.apps.PrivacyConfig"]
# The access log: one row per request that shows referral data (privacy.access_operations),
# written after the view, so it sees the user an API token authenticated.
MIDDLEWARE.insert(
    MIDDLEWARE.index("referrals.middleware.ClientTimezoneMiddleware") + 1,
    "privacy.middleware.AccessLogMiddleware",
)
# Access log rows older than this many days are purged (privacy.access_log); 0 keeps them.
ACCESS_LOG_RETENTION_DAYS = env_int("ACCESS_LOG_RETENTION_DAYS", 365, minimum=0)
# Erasure receipts keep an HMAC-SHA256 of the person's identifier, never the identifier: keyed
# with this (empty: derived from SECRET_KEY). Set it to keep receipts comparable across a
# rotation of SECRET_KEY; changing it makes earlier receipts unmatchable.
ERASURE_HASH_KEY = env_str("ERASURE_HASH_KEY", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
