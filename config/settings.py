"""Docflow settings: one module, every value read from the environment.

With no environment at all the project runs on a SQLite file with Celery tasks executed
inline, so `make demo` works on a fresh machine. Production sets DATABASE_URL (PostgreSQL),
CELERY_BROKER_URL (Redis), SECRET_KEY, ALLOWED_HOSTS and DEBUG=false.
"""

from __future__ import annotations

from pathlib import Path

import environ
from kombu import Queue

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").exists():
    env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env(
    "SECRET_KEY",
    default="django-insecure-docflow-local-only-set-SECRET_KEY-in-production",
)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "operations.admin_config.DocflowAdminConfig",  # django.contrib.admin, Docflow index
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.postgres",
    "django_celery_beat",
    "django_celery_results",
    "rest_framework",
    "rest_framework.authtoken",
    "documents",
    "profiles",
    "analytics",
    "operations",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"

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

WSGI_APPLICATION = "config.wsgi.application"

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}"),
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # The web process and inline tasks share one file: wait for locks instead of failing.
    DATABASES["default"]["OPTIONS"] = {"timeout": 20}
    DATABASES["default"]["CONN_MAX_AGE"] = 0

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env("STATIC_ROOT", default=str(BASE_DIR / "var" / "static")))
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env("MEDIA_ROOT", default=str(BASE_DIR / "var" / "media")))
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
WHITENOISE_USE_FINDERS = DEBUG

# Uploads: Django streams anything above the memory limit to a temporary file.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=10 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = env.int("FILE_UPLOAD_MAX_MEMORY_SIZE", default=5 * 1024 * 1024)
DATA_UPLOAD_MAX_NUMBER_FILES = env.int("DATA_UPLOAD_MAX_NUMBER_FILES", default=200)

# Security: secure by default, relaxed only where DEBUG says this is a developer's machine.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
# Probes and scrapers speak plain HTTP inside the cluster.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
}

# --- Docflow -------------------------------------------------------------------------------
DOCFLOW = {
    # Largest single file accepted (upload, ingest, URL fetch) and the page cap per document.
    "MAX_DOCUMENT_BYTES": env.int("DOCFLOW_MAX_DOCUMENT_BYTES", default=100 * 1024 * 1024),
    "MAX_PAGES": env.int("DOCFLOW_MAX_PAGES", default=2000),
    # Archives (admin "upload many", ingest_documents): refuse bombs and oversized archives.
    "ARCHIVE_MAX_MEMBERS": env.int("DOCFLOW_ARCHIVE_MAX_MEMBERS", default=10000),
    "ARCHIVE_MAX_TOTAL_BYTES": env.int(
        "DOCFLOW_ARCHIVE_MAX_TOTAL_BYTES", default=2 * 1024 * 1024 * 1024
    ),
    "ARCHIVE_MAX_RATIO": env.int("DOCFLOW_ARCHIVE_MAX_RATIO", default=200),
    "CHUNK_TARGET_CHARS": env.int("DOCFLOW_CHUNK_TARGET_CHARS", default=1200),
    "CHUNK_OVERLAP_CHARS": env.int("DOCFLOW_CHUNK_OVERLAP_CHARS", default=150),
    # "hashing" works offline with no model; "sentence-transformers" needs that package
    # and a model already on disk (nothing is downloaded at run time).
    "EMBEDDING_PROVIDER": env("DOCFLOW_EMBEDDING_PROVIDER", default="hashing"),
    "EMBEDDING_DIMENSIONS": env.int("DOCFLOW_EMBEDDING_DIMENSIONS", default=256),
    "EMBEDDING_MODEL": env("DOCFLOW_EMBEDDING_MODEL", default=""),
    # The optional OpenAI-compatible provider (off unless a base URL is set): embeddings with
    # DOCFLOW_EMBEDDING_PROVIDER=openai (model: DOCFLOW_EMBEDDING_MODEL), and a summary stage
    # with DOCFLOW_OPENAI_SUMMARY_MODEL. Calls pass a token bucket shared by all workers.
    "OPENAI_BASE_URL": env("DOCFLOW_OPENAI_BASE_URL", default=""),
    "OPENAI_API_KEY": env("DOCFLOW_OPENAI_API_KEY", default=""),
    "OPENAI_SUMMARY_MODEL": env("DOCFLOW_OPENAI_SUMMARY_MODEL", default=""),
    "OPENAI_RATE_LIMIT": env("DOCFLOW_OPENAI_RATE_LIMIT", default="60/m"),
    "OPENAI_TIMEOUT_SECONDS": env.float("DOCFLOW_OPENAI_TIMEOUT_SECONDS", default=30.0),
    # A worker sleeps up to this long for a rate-limit slot; a longer wait sends the task back
    # to the broker with that countdown (not counted as a retry), freeing the process meanwhile.
    "RATE_LIMIT_MAX_BLOCK_SECONDS": env.float("DOCFLOW_RATE_LIMIT_MAX_BLOCK_SECONDS", default=5.0),
    # Stages a document reaches within this many seconds of starting are not written: the
    # admin polls every second or two, so a document done in half a second writes none (three
    # UPDATEs per document saved at scale). 0 writes every stage.
    "PROGRESS_EVERY_SECONDS": env.float("DOCFLOW_PROGRESS_EVERY_SECONDS", default=0.5),
    "FETCH_TIMEOUT_SECONDS": env.float("DOCFLOW_FETCH_TIMEOUT_SECONDS", default=20.0),
    # Off: URLs resolving to loopback, private or link-local addresses are refused (SSRF).
    "FETCH_ALLOW_PRIVATE": env.bool("DOCFLOW_FETCH_ALLOW_PRIVATE", default=False),
    # Queued this long with the broker's document queues empty: its message was lost.
    "QUEUED_LEASE_SECONDS": env.int("DOCFLOW_QUEUED_LEASE_SECONDS", default=15 * 60),
    # A document whose worker died this many times is failed instead of retried forever.
    "MAX_ATTEMPTS": env.int("DOCFLOW_MAX_ATTEMPTS", default=4),
    "RETRY_BACKOFF_SECONDS": env.float("DOCFLOW_RETRY_BACKOFF_SECONDS", default=5.0),
    "RETRY_BACKOFF_MAX_SECONDS": env.float("DOCFLOW_RETRY_BACKOFF_MAX_SECONDS", default=300.0),
    # Documents per message when bulk ingest hands ids to workers to fan out.
    "ENQUEUE_BATCH_SIZE": env.int("DOCFLOW_ENQUEUE_BATCH_SIZE", default=500),
    # Small stored files are processed this many to a task: one claim, one commit and one
    # Celery round for all of them (Celery's own cost is about 4 ms a task). Anything unusual
    # (a retry, a time limit, a redelivery) hands the rest to one task each. 1 turns it off.
    "PROCESS_BATCH_SIZE": env.int("DOCFLOW_PROCESS_BATCH_SIZE", default=10),
    "PROCESS_BATCH_MAX_BYTES": env.int("DOCFLOW_PROCESS_BATCH_MAX_BYTES", default=1024 * 1024),
    # Agent imports: the largest file, and the server folders a row may name documents from
    # (empty: server-side paths are refused).
    "IMPORT_MAX_BYTES": env.int("DOCFLOW_IMPORT_MAX_BYTES", default=10 * 1024 * 1024),
    "IMPORT_ALLOWED_ROOTS": env.list("DOCFLOW_IMPORT_ALLOWED_ROOTS", default=[]),
    # A new interaction queues its profile's enrichment this many seconds later, so a burst of
    # messages is read by one run.
    "ENRICH_DEBOUNCE_SECONDS": env.float("DOCFLOW_ENRICH_DEBOUNCE_SECONDS", default=10.0),
    # Analytics: how far back the first rollup run reaches when nothing is filled yet, and
    # which files the monthly beat entry writes for each organization.
    "ANALYTICS_BACKFILL_DAYS": env.int("DOCFLOW_ANALYTICS_BACKFILL_DAYS", default=31),
    "USAGE_REPORT_FORMATS": env.list("DOCFLOW_USAGE_REPORT_FORMATS", default=["pdf", "csv"]),
    # PostgreSQL work_mem of a rollup's transaction (its percentiles sort a whole period).
    "ANALYTICS_WORK_MEM": env("DOCFLOW_ANALYTICS_WORK_MEM", default="128MB"),
    # /healthz fails when the beat canary (every minute) is older than this.
    "HEARTBEAT_MAX_AGE_SECONDS": env.int("DOCFLOW_HEARTBEAT_MAX_AGE_SECONDS", default=180),
    # How many times one piece of dead work may be replayed from the admin.
    "DEAD_LETTER_MAX_REPLAYS": env.int("DOCFLOW_DEAD_LETTER_MAX_REPLAYS", default=3),
    # Admin actions over more rows than this show a confirmation page first.
    "ADMIN_CONFIRM_OVER": env.int("DOCFLOW_ADMIN_CONFIRM_OVER", default=100),
    # When set, /metrics wants `Authorization: Bearer <token>`.
    "METRICS_TOKEN": env("DOCFLOW_METRICS_TOKEN", default=""),
    # Time limits of one document's processing (soft: the task records a clear failure).
    "PROCESS_SOFT_TIME_LIMIT": env.int("DOCFLOW_PROCESS_SOFT_TIME_LIMIT", default=600),
    "PROCESS_TIME_LIMIT": env.int("DOCFLOW_PROCESS_TIME_LIMIT", default=660),
}

# --- JSON API (/api/v1/) ----------------------------------------------------------------------
# Token first: an anonymous request gets 401 with `WWW-Authenticate: Token`, not 403.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "UNAUTHENTICATED_USER": None,
}

# --- Celery ----------------------------------------------------------------------------------
# No broker configured: run tasks inline in the calling process (embedded default). The
# in-memory transport only stands in so that nothing tries to reach a broker on localhost.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="") or "memory://"
CELERY_TASK_ALWAYS_EAGER = CELERY_BROKER_URL == "memory://"
CELERY_TASK_EAGER_PROPAGATES = False

CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True

CELERY_TASK_QUEUES = [Queue(name) for name in ("high", "medium", "low", "scheduled")]
CELERY_TASK_DEFAULT_QUEUE = "medium"
CELERY_TASK_ROUTES = {
    "documents.tasks.document_process_task": {"queue": "high"},
    "documents.tasks.documents_process_batch_task": {"queue": "high"},
    "documents.tasks.documents_fan_out_task": {"queue": "low"},
    "documents.tasks.documents_requeue_stuck_task": {"queue": "scheduled"},
    "documents.tasks.agent_import_task": {"queue": "low"},
    "profiles.tasks.profiles_enrich_stale_task": {"queue": "scheduled"},
    "profiles.tasks.*": {"queue": "medium"},
    "analytics.tasks.usage_report_task": {"queue": "low"},
    "analytics.tasks.*": {"queue": "scheduled"},
    "operations.tasks.*": {"queue": "scheduled"},
    "celery.backend_cleanup": {"queue": "scheduled"},
}

# Reliability: a message is acknowledged only after its task finished, and a worker that dies
# hands its message back. Tasks must therefore be idempotent (they are: claim + replace).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = env.int("CELERY_WORKER_PREFETCH_MULTIPLIER", default=1)
CELERY_WORKER_MAX_TASKS_PER_CHILD = env.int("CELERY_WORKER_MAX_TASKS_PER_CHILD", default=500)
# Celery's Django fixup closes the database connection around every task unless this is set;
# reconnecting costs more than a small task. Connections are still recycled every N tasks.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=200)
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_TRACK_STARTED = True
# Task events feed Flower or `celery events`; nothing in Docflow reads them, and they cost the
# worker's main process three publishes per task. Turn them on here, or for a while with
# `celery -A config control enable_events`.
CELERY_WORKER_SEND_TASK_EVENTS = env.bool("CELERY_WORKER_SEND_TASK_EVENTS", default=False)
CELERY_TASK_SEND_SENT_EVENT = CELERY_WORKER_SEND_TASK_EVENTS
# Defaults for tasks that set none; document processing sets its own.
CELERY_TASK_SOFT_TIME_LIMIT = 300
CELERY_TASK_TIME_LIMIT = 330
# Redis redelivers a message not acked within this many seconds of its receipt. It must stay
# above the longest hard time limit plus the time a prefetched message may wait (a system
# check enforces it).
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 2 * 60 * 60}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"visibility_timeout": 2 * 60 * 60}

CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_RESULT_EXPIRES = 7 * 24 * 60 * 60
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
