"""Settings of the reference app: every value comes from the environment."""

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from redis.backoff import NoBackoff
from redis.retry import Retry

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG")
SECRET_KEY = env("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY is not set (required unless DJANGO_DEBUG=1)")
    SECRET_KEY = "insecure-dev-only-key"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "*")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

# Shown in the X-Release and X-Served-By headers (docs/app-api.md).
# A deployed tree carries its release name in the file RELEASE (written per commit by the drill
# workspace); APP_RELEASE overrides it.
_RELEASE_FILE = BASE_DIR / "RELEASE"
APP_RELEASE = env("APP_RELEASE") or (
    _RELEASE_FILE.read_text().strip() if _RELEASE_FILE.is_file() else "dev"
)
APP_SERVER = env("APP_SERVER")  # "wsgi" or "asgi", set by bin/wsgi and bin/asgi

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "ai_model",
    "chat_session",
    "api",
]

MIDDLEWARE = [
    "arena.middleware.ReleaseMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "arena.urls"
WSGI_APPLICATION = "arena.wsgi.application"
ASGI_APPLICATION = "arena.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

# gunicorn's threads are fixed: each keeps its connection (CONN_MAX_AGE). Under uvicorn the
# sync ORM calls run in threads that come and go, so persistent connections would pile up, and
# without any reuse every stream and WebSocket connect opened its own connection: a fork and a
# SCRAM handshake in PostgreSQL each time (postgres CPU ~3x that of the pre-hybrid stack at the
# drills' default load). uvicorn draws from Django's connection pool (psycopg_pool) instead;
# with CONN_HEALTH_CHECKS Django has the pool check each connection on checkout, so a backend
# that PostgreSQL terminated is replaced, not handed out.
# A dead database must give a fast 503, not a hung worker: the same bound on a direct connect
# and on a wait for a pooled connection.
_db_timeout_s = env_int("POSTGRES_CONNECT_TIMEOUT", 2)
_db_options: dict = {"connect_timeout": _db_timeout_s}
if APP_SERVER == "asgi" and env_bool("DB_POOL", True):
    _db_options["pool"] = {
        "min_size": env_int("DB_POOL_MIN_SIZE", 2),
        "max_size": env_int("DB_POOL_MAX_SIZE", 8),
        "timeout": _db_timeout_s,
    }

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": env("POSTGRES_HOST", "postgres"),
        "PORT": env("POSTGRES_PORT", "5432"),
        "NAME": env("POSTGRES_DB", "arena_production"),
        "USER": env("POSTGRES_USER", "arena_user"),
        "PASSWORD": env("POSTGRES_PASSWORD"),
        # no persistent connections under uvicorn (Django refuses them beside a pool)
        "CONN_MAX_AGE": env_int("CONN_MAX_AGE", 0 if APP_SERVER == "asgi" else 60),
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": _db_options,
    }
}

REDIS_URL = env("REDIS_URL", "redis://redis:6379/0")
REDIS_TIMEOUT = float(env("REDIS_TIMEOUT", "1"))

# Shared by the caches and the health check: a dead Redis must fail fast.
REDIS_OPTIONS = {
    "socket_connect_timeout": REDIS_TIMEOUT,
    "socket_timeout": REDIS_TIMEOUT,
    # One retry heals a pooled socket that Redis closed on restart.
    "retry": Retry(NoBackoff(), 1),
}


CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env("CACHE_KEY_PREFIX", "arena-cache"),
        "TIMEOUT": env_int("CACHE_TIMEOUT", 300),
        "OPTIONS": dict(REDIS_OPTIONS),
    },
    "sessions": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env("SESSION_CACHE_KEY_PREFIX", "arena-session"),
        "OPTIONS": dict(REDIS_OPTIONS),
    },
}
MODELS_CACHE_TTL = env_int("MODELS_CACHE_TTL", 60)

# Sessions live in Redis (the cache backend); see arena/session_store.py.
SESSION_ENGINE = env("SESSION_ENGINE", "arena.session_store")
SESSION_CACHE_ALIAS = "sessions"
SESSION_COOKIE_NAME = env("SESSION_COOKIE_NAME", "sessionid")
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 1209600)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE")
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE")

# Django's default PBKDF2 costs ~0.25 s of CPU per login; a drill with a high
# login rate on a 2-core machine may name a cheaper hasher here.
PASSWORD_HASHERS = [
    *env_list("DJANGO_PASSWORD_HASHER"),
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# Admin pages work without their CSS; run collectstatic into STATIC_ROOT and
# let nginx serve it if the looks matter.
STATIC_URL = "static/"
STATIC_ROOT = env("STATIC_ROOT", str(BASE_DIR / "staticfiles"))

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
}
