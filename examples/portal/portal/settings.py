"""Settings for the webdock example portal: everything comes from the environment.

DJANGO_SECRET_KEY     required at runtime (a fixed fallback only when WEBDOCK_BUILD=1,
                      which the image build sets for collectstatic)
DJANGO_ALLOWED_HOSTS  comma-separated, default "localhost,127.0.0.1"
WEBDOCK_DATA          data directory (default /data): db.sqlite3 and logs/
DATABASE_URL          postgresql://USER:PASSWORD@HOST:PORT/NAME (the fleet: one database
                      for every host); unset: SQLite in WEBDOCK_DATA
WEBDOCK_RELEASE       release tag, set in the image by webdock build (shown in X-Release)
"""
import os
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

BUILDING = os.environ.get("WEBDOCK_BUILD") == "1"

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if BUILDING:
        SECRET_KEY = "webdock-build-only-not-a-secret"
    else:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY is not set")

DEBUG = False

ALLOWED_HOSTS = [
    h.strip()
    for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1").split(",")
    if h.strip()
]

RELEASE = os.environ.get("WEBDOCK_RELEASE", "dev")

DATA_DIR = Path(os.environ.get("WEBDOCK_DATA", "/data"))
LOG_DIR = DATA_DIR / "logs"
if not BUILDING:
    try:
        DATA_DIR.mkdir(parents=True, exist_ok=True)
    except OSError:
        pass  # reported by SQLite on first use, with the path

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.staticfiles",
    "portal",
]

MIDDLEWARE = [
    "portal.middleware.ReleaseHeaderMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "portal.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]

WSGI_APPLICATION = "portal.wsgi.application"



def postgres(url):
    """DATABASE_URL as Django's settings, parsed with the standard library."""
    u = urlsplit(url)
    if u.scheme not in ("postgres", "postgresql"):
        raise ImproperlyConfigured(f"DATABASE_URL: scheme {u.scheme!r} is not postgresql")
    options = dict(parse_qsl(u.query))
    # A transaction left open by a frozen process (docker pause) would block
    # the lease holder's epoch bump, and with it the next daemon's start.
    options.setdefault("options", "-c idle_in_transaction_session_timeout=10s")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(u.path.lstrip("/")) or "postgres",
        "USER": unquote(u.username or ""),
        "PASSWORD": unquote(u.password or ""),
        "HOST": u.hostname or "",
        "PORT": str(u.port or ""),
        "OPTIONS": options,
    }


DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL:
    DATABASES = {"default": postgres(DATABASE_URL)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "db.sqlite3",
            "OPTIONS": {
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# The front-end bundle compiled by [build.assets] (esbuild, sassc) on the
# build host; collectstatic hashes and pre-compresses it like the rest.
ASSETS_DIR = BASE_DIR / "frontend-dist"
STATICFILES_DIRS = [ASSETS_DIR] if ASSETS_DIR.is_dir() else []
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
}

# Everything goes to stderr: the container's log is `docker logs`.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "INFO"},
    "loggers": {"django": {"handlers": ["console"], "level": "INFO", "propagate": False}},
}
