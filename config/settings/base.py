"""Settings shared by every environment.

Every toggle is read here from the environment (django-environ); app code reads
``django.conf.settings`` only. Each variable is listed in ``.env.example``.
"""

import os
from pathlib import Path

import django_stubs_ext
import environ

# Django generics (ModelAdmin[Model], QuerySet[Model], ...) subscriptable at runtime, as the type hints use them.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
# A local .env is optional and never committed; the process environment wins. Then the secrets `make run`
# generated for this checkout (var/secrets.env: secret key, Flower and sandbox admin credentials), so
# commands typed in a shell (manage.py sandbox_fault, ...) use the same ones as the running stack.
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)
_secrets_file = Path(os.environ.get("HOGA_VAR_DIR") or BASE_DIR / "var") / "secrets.env"
if _secrets_file.is_file():
    environ.Env.read_env(_secrets_file, overwrite=False)

# --- Django core -------------------------------------------------------------------------------
SECRET_KEY = env("DJANGO_SECRET_KEY", default="")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "django_celery_beat",
    "axes",
    "apps.core",
    "apps.trading.accounts",
    "apps.trading.orders",
    "apps.trading.positions",
    "apps.marketdata",
    "apps.fundamentals",
    "apps.brokerage",
    "apps.live",
    "apps.sandbox",
    "apps.pages",
    "apps.conditions",
    "apps.notifications",
    "apps.portfolio",
    "apps.watchlists",
    "apps.strategies",
]

MIDDLEWARE = [
    "apps.core.metrics.RequestMetricsMiddleware",  # first: times everything below it, by route
    "django.middleware.security.SecurityMiddleware",
    "apps.core.middleware.InputGuardMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",  # cookie / Accept-Language / LANGUAGE_CODE; sets Content-Language
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "apps.core.i18n.UserLanguageMiddleware",  # a logged-in user's chosen language wins over the cookie
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: refuses logins while a username or client address is locked out.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = None
ASGI_APPLICATION = "config.asgi.application"

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
                "django.template.context_processors.i18n",
                "apps.core.context_processors.hoga",
                "apps.pages.context_processors.market_day",
            ],
        },
    },
]

# --- Database and cache ------------------------------------------------------------------------
# DATABASE_URL / REDIS_URL are filled in by scripts/devstack.py when the embedded servers are used.
DATABASES = {"default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/hoga")}
# Under ASGI (the web role) every request's sync code runs in a fresh thread, so persistent connections
# would pile up instead of being reused: a web worker started by bin/hoga-process borrows them from a pool
# (psycopg_pool, at most DB_POOL_MAX_SIZE per worker process; 0 turns it off) and hands them back after each
# request, sparing PostgreSQL a new backend per request. WEB_CONCURRENCY workers x DB_POOL_MAX_SIZE plus
# the Celery processes must fit max_connections (config/gunicorn.py warns when not). Workers keep theirs 60 s.
_WEB = env("HOGA_PROCESS_ROLE", default="web") == "web"
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=0 if _WEB else 60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env.int("DB_CONNECT_TIMEOUT", default=3)
DB_POOL_MAX_SIZE = env.int("DB_POOL_MAX_SIZE", default=10)
if _WEB and "HOGA_PROCESS_ROLE" in os.environ and DB_POOL_MAX_SIZE > 0 and not DATABASES["default"]["CONN_MAX_AGE"]:
    DATABASES["default"]["OPTIONS"]["pool"] = {
        "min_size": min(2, DB_POOL_MAX_SIZE),
        "max_size": DB_POOL_MAX_SIZE,
        "timeout": env.float("DB_POOL_TIMEOUT", default=10.0),  # s a request waits for a free connection
    }
    # With checks on, every checkout first runs a query to test the connection: a round trip per request. The
    # pool already drops a connection returned broken and replaces connections after max_lifetime (1 h); a
    # connection cut while idle (a PostgreSQL restart) fails the one request that draws it.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("DB_POOL_CHECK", default=False)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")

# Local state of this installation (embedded servers of `make run`, caches). Private to the user running Hoga.
HOGA_VAR_DIR = env("HOGA_VAR_DIR", default=str(BASE_DIR / "var"))
# Files Hoga may rebuild at any time (the pickled KRX calendar): a directory only this user may write (0700,
# checked before anything in it is unpickled), never a shared temporary directory.
HOGA_CACHE_DIR = env("HOGA_CACHE_DIR", default=str(Path(HOGA_VAR_DIR) / "cache"))

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "hoga",
    }
}

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # refuses authentication while locked out (django-axes)
    "django.contrib.auth.backends.ModelBackend",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# --- Brute-force protection (django-axes) and sign-up throttling -----------------------------------
# https://django-axes.readthedocs.io/en/latest/4_configuration.html
# AUTH_LOCKOUT_FAILURES failed logins for one username, or from one client address, lock that username or
# address out of every login form (the pages' and the admin's) for AUTH_LOCKOUT_MINUTES; the page answers 429
# with the reason and when to try again. A successful login resets the count.
AXES_ENABLED = env.bool("AUTH_LOCKOUT_ENABLED", default=True)
AXES_FAILURE_LIMIT = env.int("AUTH_LOCKOUT_FAILURES", default=5)
AXES_COOLOFF_TIME = env.float("AUTH_LOCKOUT_MINUTES", default=15.0) / 60  # hours
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # either one locks: per user and per client address
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "apps.core.security.client_ip"  # REMOTE_ADDR (see HOGA_TRUSTED_PROXIES)
AXES_LOCKOUT_TEMPLATE = "pages/locked_out.html"
AXES_HTTP_RESPONSE_CODE = 429
AXES_VERBOSE = False
# Sign-ups per client address per hour (0 = unlimited).
AUTH_SIGNUP_RATE_PER_HOUR = env.int("AUTH_SIGNUP_RATE_PER_HOUR", default=5)
# Verification e-mails a user may ask for per hour, and how long a verification link stays valid.
AUTH_EMAIL_VERIFY_RATE_PER_HOUR = env.int("AUTH_EMAIL_VERIFY_RATE_PER_HOUR", default=5)
AUTH_EMAIL_VERIFY_MAX_AGE = env.int("AUTH_EMAIL_VERIFY_MAX_AGE", default=86400)  # seconds

# --- HTTPS, proxies, Content Security Policy -------------------------------------------------------
# Proxies (IPs or CIDR networks) whose X-Forwarded-For / X-Forwarded-Proto are believed (apps/core/proxy.py);
# empty: the headers are removed from every request, so a client reaching Daphne directly cannot forge them.
HOGA_TRUSTED_PROXIES = env.list("HOGA_TRUSTED_PROXIES", default=[])
# django-csp 4 (https://django-csp.readthedocs.io/): scripts, styles, fonts and images from Hoga itself
# only (the pages' ES modules, htmx and lightweight-charts are served from /static/); WebSockets and fetches
# to the same origin; no frames, plugins or foreign form targets. Style *attributes* stay allowed (the order
# book's depth bars are sized with style="width: n%"); inline scripts are not, and the one <style> element
# allowed is lightweight-charts 5.2.1's attribution-logo rule, by its hash (tests/security checks the hash
# against the vendored bundle, so upgrading the library shows up there).
CHART_LOGO_STYLE_HASH = "'sha256-3pRED1tOXas1FXFoPb9TGCjmYe9XQsmO9OV23khV2nY='"
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", CHART_LOGO_STYLE_HASH],
        "style-src-attr": ["'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# --- Time: UTC in the database, Asia/Seoul for market logic and display --------------------------
USE_TZ = True
TIME_ZONE = "Asia/Seoul"
MARKET_TIME_ZONE = "Asia/Seoul"
# Pages speak Korean unless the user picks English (the switcher in the top bar: Django's set_language view,
# remembered in the session, the language cookie and, for a logged-in user, their profile). Message files:
# locale/<lang>/LC_MESSAGES/django.po and djangojs.po (the .mo files are committed; see README "Languages").
LANGUAGE_CODE = "ko"
LANGUAGES = [("ko", "한국어"), ("en", "English")]
USE_I18N = True
LOCALE_PATHS = [BASE_DIR / "locale"]
LANGUAGE_COOKIE_NAME = "hoga_language"
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
LANGUAGE_COOKIE_SAMESITE = "Lax"

# --- Static files ------------------------------------------------------------------------------
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "var" / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- REST API ----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first: a request without credentials is answered 401 with WWW-Authenticate: Token.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.core.authentication.ExpiringTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PARSER_CLASSES": [
        "apps.core.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_THROTTLE_CLASSES": ["apps.core.throttling.WriteRateThrottle"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "apps.core.exception_handler.api_exception_handler",
    "DEFAULT_PAGINATION_CLASS": "apps.core.pagination.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 100,
}
# Largest ?limit= a list answers (a bigger one is served this many).
API_PAGE_MAX_LIMIT = env.int("API_PAGE_MAX_LIMIT", default=500)
# Writes (POST/PUT/PATCH/DELETE) per user per period, shared by every web process; empty = unlimited.
API_WRITE_RATE = env("API_WRITE_RATE", default="120/min")
API_SEARCH_RATE = env("API_SEARCH_RATE", default="300/min")  # stock search requests, reads included
# Days an API token (Authorization: Token ...) is accepted after it was issued; 0 = never expires.
API_TOKEN_TTL_DAYS = env.int("API_TOKEN_TTL_DAYS", default=30)
# Seconds a web process reuses an API token's or API key's lookup (a revoked or expired token still works this
# long in the other processes; the process that deletes it forgets it at once); 0 = look it up every request.
API_TOKEN_CACHE_SECONDS = env.float("API_TOKEN_CACHE_SECONDS", default=10.0)
# Seconds a process reuses the KRX calendar (overrides and the broker's answers) before reading it again.
CALENDAR_CACHE_SECONDS = env.float("CALENDAR_CACHE_SECONDS", default=10.0)
# Long-running processes freeze what they hold after start-up and collect cyclic garbage after this many
# allocations (CPython: 700); 0 keeps CPython's defaults (apps/core/gc_tuning.py).
GC_GEN0_THRESHOLD = env.int("GC_GEN0_THRESHOLD", default=50_000)
# Bearer token Prometheus sends to GET /metrics (staff sessions need none); empty = staff only.
METRICS_TOKEN = env("METRICS_TOKEN", default="")
# Largest JSON body and deepest nesting the API parses (deeper: json_too_deep, 400).
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=1_048_576)
API_JSON_MAX_DEPTH = env.int("API_JSON_MAX_DEPTH", default=32)
SPECTACULAR_SETTINGS = {
    "TITLE": "Hoga API",
    "DESCRIPTION": "Korean stock market data, real-time quotes and paper trading (모의투자).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI assets are served locally: Hoga works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    # Swagger UI's settings are served as a script file (SpectacularSwaggerSplitView): no inline script,
    # so the Content Security Policy needs no exception for /api/docs/.
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # One name per choice set that several serializers use (notification channels and events).
    "ENUM_NAME_OVERRIDES": {
        "NotificationChannelKindEnum": "apps.notifications.models.ChannelKind",
        "NotificationEventEnum": "apps.notifications.models.EventKind",
    },
}

# --- Channels ----------------------------------------------------------------------------------
# The PubSub layer: one Redis PUBLISH per group message instead of one round trip per member. Several Redis
# servers (CHANNEL_REDIS_URLS, a comma-separated list; default REDIS_URL) shard the groups and channels by name
# (consistent hashing): every process of a deployment must list the same servers in the same order.
CHANNEL_REDIS_URLS = [url.strip() for url in env("CHANNEL_REDIS_URLS", default=REDIS_URL).split(",") if url.strip()]
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": CHANNEL_REDIS_URLS, "prefix": "hoga"},
    }
}

# --- Celery ------------------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default=REDIS_URL)
CELERY_TIMEZONE = MARKET_TIME_ZONE
CELERY_ENABLE_UTC = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_SEND_SENT_EVENT = True
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_TRACK_STARTED = True
CELERY_RESULT_EXPIRES = 3600
# Must exceed the longest task's run time, or Redis redelivers a running task to a second worker.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=43200)}
# django-celery-beat's DatabaseScheduler, plus a heartbeat of its last tick for /healthz.
CELERY_BEAT_SCHEDULER = "apps.core.beat:HeartbeatDatabaseScheduler"
CELERY_BEAT_MAX_LOOP_INTERVAL = 5  # seconds: beat ticks (and heartbeats) at least this often
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Health (/healthz) -----------------------------------------------------------------------
# Parts whose failure makes /healthz answer 503. Queues are checked by asking live workers.
HEALTH_REQUIRED = env.list(
    "HEALTH_REQUIRED", default=["postgres", "redis", "queue:default", "queue:feed", "beat", "market_data"]
)
HEALTH_BEAT_MAX_AGE = env.int("HEALTH_BEAT_MAX_AGE", default=30)  # seconds since beat's last tick

# --- Flower ------------------------------------------------------------------------------------
FLOWER_URL = env("FLOWER_URL", default="http://127.0.0.1:5555/")

# --- Demo users created by `make run` (passwords are generated and printed once when empty) ------
HOGA_DEMO_USERNAME = env("HOGA_DEMO_USERNAME", default="demo")
HOGA_DEMO_PASSWORD = env("HOGA_DEMO_PASSWORD", default="")
HOGA_ADMIN_USERNAME = env("HOGA_ADMIN_USERNAME", default="admin")
HOGA_ADMIN_PASSWORD = env("HOGA_ADMIN_PASSWORD", default="")
HOGA_ADMIN_EMAIL = env("HOGA_ADMIN_EMAIL", default="admin@localhost")

# --- E-mail (condition alerts) -------------------------------------------------------------------
# smtp://user:password@host:587 (+tls: submission with STARTTLS), consolemail:// (print), dummymail:// (drop).
# https://django-environ.readthedocs.io/en/latest/types.html#environ-env-email-url
EMAIL_URL = env("EMAIL_URL", default="consolemail://")
EMAIL_CONFIG = environ.Env.email_url_config(EMAIL_URL)
if EMAIL_URL.startswith("filemail:///") and not EMAIL_CONFIG["EMAIL_FILE_PATH"].startswith("/"):
    EMAIL_CONFIG["EMAIL_FILE_PATH"] = "/" + EMAIL_CONFIG["EMAIL_FILE_PATH"]  # django-environ drops the root
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="hoga@localhost")

# --- Market data -------------------------------------------------------------------------------
# Directory of recorded KRX data (daily/, intraday/, ticks/, listing/). Empty: synthetic replay.
_default_data_dir = BASE_DIR.parent / "shared" / "data"
HOGA_DATA_DIR = env("HOGA_DATA_DIR", default=str(_default_data_dir) if _default_data_dir.is_dir() else "")
UNIVERSE_SIZE = env.int("HOGA_UNIVERSE_SIZE", default=50)
# The collection universe as an explicit list of codes (comma-separated); empty: the largest UNIVERSE_SIZE by
# market cap from the listing. Any other listed stock is still viewable and tradable (bars on demand).
UNIVERSE_CODES = env.list("HOGA_UNIVERSE_CODES", default=[])
# The listing: the broker's stock master files, refreshed daily (apps/marketdata/listing.py). KIS serves them at
# this URL (KIS developers FAQ "종목정보 다운로드(국내)"); with MARKET_BROKER=sandbox the sandbox serves them.
KIS_MASTER_URL = env("KIS_MASTER_URL", default="https://new.real.download.dws.co.kr/common/master")
# 증권그룹구분코드 kept from the master: stocks (ST), foreign stocks (FS), REITs (RT), infrastructure funds (IF),
# investment companies (MF), ship funds (SC), depositary receipts (DR); not ETFs, ETNs, ELWs or warrants.
LISTING_SECURITY_GROUPS = env.list("LISTING_SECURITY_GROUPS", default=["ST", "FS", "RT", "IF", "MF", "SC", "DR"])
# A master that would delist more than this share of the listed stocks at once is taken as truncated: its stocks
# are upserted, nobody is delisted, and the run is marked partial.
LISTING_MAX_DELIST_FRACTION = env.float("LISTING_MAX_DELIST_FRACTION", default=0.05)
# A stock outside the universe that someone opened is collected with it (minute and daily bars) for this long
# after the last time its page or bars were asked for, seconds.
ON_DEMAND_KEEP_SECONDS = env.int("ON_DEMAND_KEEP_SECONDS", default=3600)
# New stocks a user may have fetched on demand per minute (each costs a few broker calls on the shared key);
# beyond it the pages answer with what is stored.
ON_DEMAND_FILLS_PER_MINUTE = env.int("ON_DEMAND_FILLS_PER_MINUTE", default=20)
# Personal watchlists (apps/watchlists): lists per user and stocks per list. The dashboard subscribes the chosen
# list live, so a list stays within what one page may watch.
WATCHLISTS_MAX_PER_USER = env.int("WATCHLISTS_MAX_PER_USER", default=20)
WATCHLIST_MAX_ITEMS = env.int("WATCHLIST_MAX_ITEMS", default=50)
# The start-up fill (apps/marketdata/bootstrap.py): a default-queue worker fills the daily history (90 trading
# days on a first start), missing base prices and the session's minute bars when it starts; /healthz reports the
# part "market_data" healthy once a fill has completed on this database. false: no fill at start.
MARKETDATA_BOOTSTRAP = env.bool("MARKETDATA_BOOTSTRAP", default=True)
# Days ahead of today whose open/closed answer the daily calendar sync stores (KIS CTCA0903R, ~24 dates a page).
CALENDAR_SYNC_DAYS = env.int("CALENDAR_SYNC_DAYS", default=90)
# Where validation reports (CSV) are written.
REPORTS_DIR = env("HOGA_REPORTS_DIR", default=str(BASE_DIR / "var" / "reports"))

# --- The market day (apps/core/krx/phases.py, vi.py, circuit.py) -----------------------------------------
# KRX's planned after-market (16:00-20:00 from 2026-09-14, krx-rules §3.3, secondary sources only: verify):
# YYYY-MM-DD from which the schedule runs it instead of the after-hours single price; empty = off.
KRX_AFTER_MARKET_FROM = env("KRX_AFTER_MARKET_FROM", default="")
# Minutes before the open from which the opening auction's expected price is published (08:50 since 2025-03-04,
# was 08:40; krx-rules §3.3, verify).
KRX_INDICATIVE_MINUTES_BEFORE_OPEN = env.int("KRX_INDICATIVE_MINUTES_BEFORE_OPEN", default=10)
# Call-auction tie-break steps among the maximum-volume prices (apps/core/krx/auction.py), in order, comma-separated:
# matching (KRX's 합치가격 condition), reference (KRX's documented rule), surplus, imbalance (verify).
KRX_AUCTION_TIE_BREAK = env("KRX_AUCTION_TIE_BREAK", default="matching,reference,surplus")
# NXT's sessions move with KRX's special days (first trading day, CSAT day) when true (krx-rules §3.4: verify).
NXT_SHIFT_WITH_KRX = env.bool("NXT_SHIFT_WITH_KRX", default=False)
# Volatility interruptions (apps/core/krx/vi.py; krx-rules §3.5, thresholds in percent (verify)).
VI_STATIC_PCT = env.float("VI_STATIC_PCT", default=10.0)  # from the previous close / last single price
VI_DYNAMIC_KOSPI200_PCT = env.float("VI_DYNAMIC_KOSPI200_PCT", default=3.0)  # from the preceding trade
VI_DYNAMIC_OTHER_PCT = env.float("VI_DYNAMIC_OTHER_PCT", default=6.0)
VI_CLOSING_KOSPI200_PCT = env.float("VI_CLOSING_KOSPI200_PCT", default=2.0)  # dynamic, in the closing auction
VI_CLOSING_OTHER_PCT = env.float("VI_CLOSING_OTHER_PCT", default=4.0)
VI_DURATION_SECONDS = env.float("VI_DURATION_SECONDS", default=120.0)  # the VI call, before its random end
VI_RANDOM_END_MAX_SECONDS = env.float("VI_RANDOM_END_MAX_SECONDS", default=30.0)
# Where VIs apply (not in krx-rules; secondary sources, verify): static VI in the opening auction, dynamic not;
# dynamic VI in the after-hours single price, static not; NXT dynamic only.
VI_STATIC_IN_OPENING_AUCTION = env.bool("VI_STATIC_IN_OPENING_AUCTION", default=True)
VI_DYNAMIC_IN_OPENING_AUCTION = env.bool("VI_DYNAMIC_IN_OPENING_AUCTION", default=False)
VI_STATIC_IN_AFTER_HOURS = env.bool("VI_STATIC_IN_AFTER_HOURS", default=False)
VI_DYNAMIC_IN_AFTER_HOURS = env.bool("VI_DYNAMIC_IN_AFTER_HOURS", default=True)
VI_NXT_STATIC = env.bool("VI_NXT_STATIC", default=False)
# Circuit breaker and sidecar (apps/core/krx/circuit.py; global.krx.co.kr and news sources there, verify).
CB_STAGE_PCTS = env.list("CB_STAGE_PCTS", cast=float, default=[8.0, 15.0, 20.0])  # index fall from the previous close
CB_FURTHER_PCT = env.float("CB_FURTHER_PCT", default=1.0)  # stages 2-3: further fall below the previous trigger
CB_HALT_MINUTES = env.int("CB_HALT_MINUTES", default=20)
CB_CALL_MINUTES = env.int("CB_CALL_MINUTES", default=10)  # the single-price call that resumes trading
MARKET_GUARD_PERSIST_SECONDS = env.int("MARKET_GUARD_PERSIST_SECONDS", default=60)  # a condition must last this long
MARKET_GUARD_CUTOFF_MINUTES = env.int("MARKET_GUARD_CUTOFF_MINUTES", default=40)  # none this long before the close
SIDECAR_KOSPI_FUTURES_PCT = env.float("SIDECAR_KOSPI_FUTURES_PCT", default=5.0)
SIDECAR_KOSDAQ_FUTURES_PCT = env.float("SIDECAR_KOSDAQ_FUTURES_PCT", default=6.0)
SIDECAR_KOSDAQ_INDEX_PCT = env.float("SIDECAR_KOSDAQ_INDEX_PCT", default=3.0)
SIDECAR_MINUTES = env.int("SIDECAR_MINUTES", default=5)
SIDECAR_GRACE_MINUTES_AFTER_OPEN = env.int("SIDECAR_GRACE_MINUTES_AFTER_OPEN", default=5)
SIDECAR_RELEASE_AT_CUTOFF = env.bool("SIDECAR_RELEASE_AT_CUTOFF", default=True)

# --- Broker (KIS) ------------------------------------------------------------------------------
# MARKET_BROKER=sandbox points the KIS client at the local sandbox broker with its demo keys.
MARKET_BROKER = env("MARKET_BROKER", default="sandbox")
KIS_ENV = env("KIS_ENV", default="paper")  # real | paper
KIS_APP_KEY = env("KIS_APP_KEY", default="")
KIS_APP_SECRET = env("KIS_APP_SECRET", default="")
# MARKET_BROKER=kis: REST/WS base URLs; empty = the documented host of KIS_ENV.
KIS_REST_URL = env("KIS_REST_URL", default="")
KIS_WS_URL = env("KIS_WS_URL", default="")
KIS_CUSTTYPE = env("KIS_CUSTTYPE", default="P")  # P individual, B corporate
# Client-side limit per app key, shared by every process through Redis (KIS: 20/s real, 2/s paper).
KIS_REAL_RATE_LIMIT = env.float("KIS_REAL_RATE_LIMIT", default=18.0)
KIS_PAPER_RATE_LIMIT = env.float("KIS_PAPER_RATE_LIMIT", default=1.8)
KIS_RATE_BURST = env.int("KIS_RATE_BURST", default=1)  # back-to-back calls allowed before spacing applies
KIS_RATE_MAX_WAIT = env.float("KIS_RATE_MAX_WAIT", default=30.0)  # seconds a call may queue for a slot
KIS_TIMEOUT = env.float("KIS_TIMEOUT", default=10.0)  # seconds per HTTP request
KIS_MAX_RETRIES = env.int("KIS_MAX_RETRIES", default=3)  # transient failures only, 0..3
KIS_BACKOFF_BASE = env.float("KIS_BACKOFF_BASE", default=0.25)  # seconds, doubled per retry, with jitter
KIS_BACKOFF_MAX = env.float("KIS_BACKOFF_MAX", default=8.0)
KIS_BREAKER_THRESHOLD = env.int("KIS_BREAKER_THRESHOLD", default=5)  # consecutive failed calls that open it
KIS_BREAKER_OPEN_SECONDS = env.float("KIS_BREAKER_OPEN_SECONDS", default=60.0)
KIS_TOKEN_REFRESH_MARGIN = env.float("KIS_TOKEN_REFRESH_MARGIN", default=3600.0)  # renew this long before expiry
KIS_TOKEN_ISSUE_INTERVAL = env.float("KIS_TOKEN_ISSUE_INTERVAL", default=60.0)  # KIS: 1 issuance/min (EGW00133)
KIS_TOKEN_LOCK_TIMEOUT = env.float("KIS_TOKEN_LOCK_TIMEOUT", default=90.0)  # wait for another process's issuance

# The start-up fill and the daily holiday query (CTCA0903R) with MARKET_BROKER=sandbox use the sandbox listener
# of this mode: real (its demo real key, 20 req/s; KIS offers the holiday query to real accounts only) or paper.
SANDBOX_BULK_ENV = env("SANDBOX_BULK_ENV", default="real")

# --- Broker (Kiwoom REST/WebSocket, kiwoom-api.md Part A) and the OpenAPI+ (KOA) bridge ---------
# Real-time source of the feed worker: kis | kiwoom | koa (the Windows OpenAPI+ bridge, docs/koa-bridge.md).
MARKET_FEED = env("MARKET_FEED", default="kis")
KIWOOM_ENV = env("KIWOOM_ENV", default="mock")  # real | mock (모의투자); each has its own app keys
# Required with MARKET_BROKER=kis (real brokers); with MARKET_BROKER=sandbox the sandbox demo pair is used.
KIWOOM_APP_KEY = env("KIWOOM_APP_KEY", default="")
KIWOOM_SECRET_KEY = env("KIWOOM_SECRET_KEY", default="")
# Empty = the documented host of KIWOOM_ENV (https://api.kiwoom.com, wss://api.kiwoom.com:10000/...).
KIWOOM_REST_URL = env("KIWOOM_REST_URL", default="")
KIWOOM_WS_URL = env("KIWOOM_WS_URL", default="")
# Queries per second per app key, shared through Redis ("조회 초당 5건", UNCONFIRMED: 10% below).
KIWOOM_RATE_LIMIT = env.float("KIWOOM_RATE_LIMIT", default=4.5)
# Stocks registered per WebSocket connection (Kiwoom's limit is UNCONFIRMED; each stock takes 0B + 0D).
KIWOOM_WS_MAX_STOCKS = env.int("KIWOOM_WS_MAX_STOCKS", default=100)
# KOA bridge: the Redis it publishes to (empty = REDIS_URL) and its channel prefix.
KOA_REDIS_URL = env("KOA_REDIS_URL", default="")
KOA_CHANNEL_PREFIX = env("KOA_CHANNEL_PREFIX", default="koa")
# No bridge heartbeat for this long: the feed status turns stale (the bridge beats every 2 s).
KOA_HEARTBEAT_TIMEOUT = env.float("KOA_HEARTBEAT_TIMEOUT", default=10.0)
# Stocks the bridge registers (OpenAPI+: at most 100 codes per SetRealReg screen).
KOA_MAX_STOCKS = env.int("KOA_MAX_STOCKS", default=100)

# --- Sandbox broker (python manage.py runsandbox) -------------------------------------------------
SANDBOX_HOST = env("SANDBOX_HOST", default="127.0.0.1")  # address the sandbox listens on
# Address clients use to reach the sandbox (differs from SANDBOX_HOST when it listens on 0.0.0.0).
SANDBOX_CONNECT_HOST = env(
    "SANDBOX_CONNECT_HOST", default="127.0.0.1" if SANDBOX_HOST in ("0.0.0.0", "::") else SANDBOX_HOST
)
SANDBOX_REAL_REST_PORT = env.int("SANDBOX_REAL_REST_PORT", default=19443)
SANDBOX_PAPER_REST_PORT = env.int("SANDBOX_PAPER_REST_PORT", default=29443)
SANDBOX_REAL_WS_PORT = env.int("SANDBOX_REAL_WS_PORT", default=21000)
SANDBOX_PAPER_WS_PORT = env.int("SANDBOX_PAPER_WS_PORT", default=31000)
# Rate limits per app key, requests per second (KIS documents 20/s real, 2/s paper).
SANDBOX_REAL_RATE_LIMIT = env.float("SANDBOX_REAL_RATE_LIMIT", default=20.0)
SANDBOX_PAPER_RATE_LIMIT = env.float("SANDBOX_PAPER_RATE_LIMIT", default=2.0)
# replay: the session starts at 09:00 KST when the sandbox starts; wallclock: follow real KST.
SANDBOX_CLOCK = env("SANDBOX_CLOCK", default="replay")
SANDBOX_SPEED = env.float("SANDBOX_SPEED", default=1.0)
SANDBOX_REPLAY_DATE = env("SANDBOX_REPLAY_DATE", default="")  # YYYY-MM-DD; empty = latest recorded
SANDBOX_SEED = env.int("SANDBOX_SEED", default=20260220)
# Prints per replayed bar: real (calibrated KRX density), light (<= ~20 a minute per stock), or a multiplier.
SANDBOX_TAPE_DENSITY = env("SANDBOX_TAPE_DENSITY", default="real")
SANDBOX_WS_MAX_REGISTRATIONS = env.int("SANDBOX_WS_MAX_REGISTRATIONS", default=41)
SANDBOX_PINGPONG_INTERVAL = env.float("SANDBOX_PINGPONG_INTERVAL", default=10.0)
SANDBOX_PINGPONG_TIMEOUT = env.float("SANDBOX_PINGPONG_TIMEOUT", default=110.0)
# File to which the sandbox appends every trade print it sends ("code cum_volume price epoch_s"); empty: off.
SANDBOX_SEND_LOG = env("SANDBOX_SEND_LOG", default="")
SANDBOX_WS_HEARTBEAT = env.float("SANDBOX_WS_HEARTBEAT", default=60.0)  # s between send-loop heartbeat lines
SANDBOX_TOKEN_ERROR_STATUS = env.int("SANDBOX_TOKEN_ERROR_STATUS", default=500)  # UNCONFIRMED in KIS docs
SANDBOX_TOKEN_RATE_STATUS = env.int("SANDBOX_TOKEN_RATE_STATUS", default=403)  # EGW00133, UNCONFIRMED
# Extra "appkey:appsecret:real|paper" credentials the sandbox accepts besides its demo keys.
SANDBOX_APP_CREDENTIALS = env.list("SANDBOX_APP_CREDENTIALS", default=[])
# Admin endpoints (fault injection, clock) require this token in the X-Sandbox-Admin header. No default: empty
# disables them; `make run` generates one into var/secrets.env, docker-compose requires one in .env.
SANDBOX_ADMIN_TOKEN = env("SANDBOX_ADMIN_TOKEN", default="")
# Kiwoom side of the sandbox (kiwoom-api.md Part A): one REST and one WS listener for real and mock keys.
SANDBOX_KIWOOM_REST_PORT = env.int("SANDBOX_KIWOOM_REST_PORT", default=19446)
SANDBOX_KIWOOM_WS_PORT = env.int("SANDBOX_KIWOOM_WS_PORT", default=19447)
SANDBOX_KIWOOM_RATE_LIMIT = env.float("SANDBOX_KIWOOM_RATE_LIMIT", default=5.0)  # req/s per app key per category
SANDBOX_KIWOOM_RATE_STATUS = env.int("SANDBOX_KIWOOM_RATE_STATUS", default=429)  # HTTP status of 1700, UNCONFIRMED
SANDBOX_KIWOOM_CONDITIONS = env("SANDBOX_KIWOOM_CONDITIONS", default="")  # rules file; empty = shipped rules
SANDBOX_KIWOOM_PING_INTERVAL = env.float("SANDBOX_KIWOOM_PING_INTERVAL", default=10.0)  # s, UNCONFIRMED
SANDBOX_KIWOOM_PING_TIMEOUT = env.float("SANDBOX_KIWOOM_PING_TIMEOUT", default=60.0)  # s without echo, UNCONFIRMED
# Dates (YYYY-MM-DD, comma-separated) the sandbox's calendar and holiday query (CTCA0903R) call closed on top
# of the KRX facts Hoga ships: rehearse an ad-hoc closure.
SANDBOX_CLOSED_DAYS = env.list("SANDBOX_CLOSED_DAYS", default=[])
# The paper listener's answer to the holiday query: refuse (EGW02006, as reported for KIS) | serve.
SANDBOX_PAPER_HOLIDAY = env("SANDBOX_PAPER_HOLIDAY", default="refuse")
# Content-Type of every KIS answer (the charset's case is UNCONFIRMED; KIS's portal shows utf-8).
SANDBOX_KIS_CONTENT_TYPE = env("SANDBOX_KIS_CONTENT_TYPE", default="application/json; charset=utf-8")
# KRW every sandbox trading account (KIS order TRs) starts with; accounts live as long as the sandbox process.
SANDBOX_ORDER_DEPOSIT = env.int("SANDBOX_ORDER_DEPOSIT", default=100_000_000)
# The sandbox's paper listener serves NXT trades (H0NXCNT0) too (KIS paper does not; kis-api.md §7).
SANDBOX_PAPER_NXT = env.bool("SANDBOX_PAPER_NXT", default=False)
# Stocks traded on NXT (comma-separated codes), read by the feed (which NXT trades to subscribe), the paper
# engine (apps.live.nxt) and the sandbox. The default is a subset of the large caps, APPROXIMATE: NXT's real
# list changes daily (krx-rules §3.4); with a Kiwoom feed its stock list's nxtEnable is the broker's word.
NXT_ELIGIBLE_CODES = env.list(
    "NXT_ELIGIBLE_CODES",
    default=["005930", "000660", "373220", "207940", "005380", "000270", "068270", "105560", "035420", "035720",
             "247540", "012450"],
)  # fmt: skip
# KOSPI200 members (comma-separated) for the dynamic VI threshold; empty = the sandbox ranks its universe's KOSPI
# stocks by market capitalisation (approximate).
KOSPI200_CODES = env.list("KOSPI200_CODES", default=[])

# --- Real-time feed -----------------------------------------------------------------------------
# The broker WebSocket holder (apps/live/feed), run by the Celery worker consuming the `feed` queue
# (a worker bootstep) or by `manage.py runfeed`. One holder per app key everywhere (a Redis lease).
FEED_ENABLED = env.bool("FEED_ENABLED", default=True)  # false: the feed worker holds no feed
# Extra "appkey:appsecret" pairs: one more connection (41 registrations = 20 stocks) per key.
FEED_EXTRA_APP_KEYS = env.list("FEED_EXTRA_APP_KEYS", default=[])
# Lease timings, seconds: a dead holder is replaced after at most TTL + RETRY (< 10 s).
FEED_LEASE_TTL = env.float("FEED_LEASE_TTL", default=6.0)
FEED_LEASE_RENEW = env.float("FEED_LEASE_RENEW", default=2.0)  # at most TTL / 2
FEED_LEASE_RETRY = env.float("FEED_LEASE_RETRY", default=1.0)  # how often a stand-by candidate retries
FEED_MAX_REGISTRATIONS = env.int("FEED_MAX_REGISTRATIONS", default=41)  # per connection (KIS §6.8)
# Registrations of a connection kept for NXT trades (H0NXCNT0) of NXT-eligible stocks with open orders; the
# stocks a connection carries shrink by one per two of them in use (apps/live/feed/holder.py, "slot budget").
FEED_NXT_REGISTRATIONS = env.int("FEED_NXT_REGISTRATIONS", default=5)
# Subscribe NXT trades on a KIS paper connection too: KIS paper has no NXT feeds (kis-api.md §7), the sandbox
# serves them with SANDBOX_PAPER_NXT=true (a paper stack whose paper engine routes orders to NXT).
FEED_NXT_IN_PAPER = env.bool("FEED_NXT_IN_PAPER", default=False)
FEED_VIEWER_GRACE = env.float("FEED_VIEWER_GRACE", default=30.0)  # keep a code this long after its last viewer
FEED_WATCHLIST_SIZE = env.int("FEED_WATCHLIST_SIZE", default=UNIVERSE_SIZE)  # universe stocks to fill spare slots
FEED_STATUS_INTERVAL = env.float("FEED_STATUS_INTERVAL", default=3.0)  # status publish period (key TTL 30 s)
# No data and no PINGPONG for this long: the session reconnects (KIS pings about every 10 s).
FEED_STALL_TIMEOUT = env.float("FEED_STALL_TIMEOUT", default=30.0)
# Market open, connected, registered, PINGPONGs but no data frame for this long: the connection is replaced.
FEED_SILENCE_TIMEOUT = env.float("FEED_SILENCE_TIMEOUT", default=90.0)
FEED_QUEUE_SIZE = env.int("FEED_QUEUE_SIZE", default=10000)  # events buffered for Redis; oldest dropped beyond
# Most queued events published in one batch (one Redis round trip, one group message per quote bucket).
FEED_PUBLISH_BATCH_MAX = env.int("FEED_PUBLISH_BATCH_MAX", default=500)
FEED_BACKOFF_BASE = env.float("FEED_BACKOFF_BASE", default=0.5)  # reconnect back-off, doubled per failure
FEED_BACKOFF_MAX = env.float("FEED_BACKOFF_MAX", default=30.0)
FEED_RECORD_DIR = env("FEED_RECORD_DIR", default="")  # record every event to <dir>/<date>/<tr>.log; empty: off
# Fairness of the live slots. Viewer demand counts each user once per stock, a user's weight split over the
# stocks they watch; order demand is taken round-robin across users, each user's open-order stocks counting
# first for at most a fair share of the live slots (slots / users with open orders, at least
# FEED_ORDER_CODES_MIN_PER_USER); the rest of a user's order stocks come after viewer demand.
FEED_ORDER_CODES_MIN_PER_USER = env.int("FEED_ORDER_CODES_MIN_PER_USER", default=2)
# Stocks wanted (open orders or viewers) without a live slot are polled over REST (current price) at most
# FEED_POLL_RATE requests per second, taken from the broker's shared rate limit only when a slot is free at
# once (collection is never made to wait); each stock at most every FEED_POLL_MIN_INTERVAL seconds.
FEED_POLL_ENABLED = env.bool("FEED_POLL_ENABLED", default=True)
FEED_POLL_RATE = env.float("FEED_POLL_RATE", default=0.5)
FEED_POLL_MIN_INTERVAL = env.float("FEED_POLL_MIN_INTERVAL", default=5.0)

# --- Browser WebSockets ---------------------------------------------------------------------------------------
# Every socket: messages per second per connection (token bucket, bursts of WS_MESSAGE_BURST) and the deepest
# JSON nesting of a frame. /ws/market/: stocks per connection, different stocks per user across connections,
# connections per user, messages per minute per user (0 = unlimited).
WS_MESSAGE_RATE = env.float("WS_MESSAGE_RATE", default=5.0)
WS_MESSAGE_BURST = env.int("WS_MESSAGE_BURST", default=20)
WS_JSON_MAX_DEPTH = env.int("WS_JSON_MAX_DEPTH", default=8)
MARKET_WS_MAX_CODES = env.int("MARKET_WS_MAX_CODES", default=50)
MARKET_WS_MAX_CODES_PER_USER = env.int("MARKET_WS_MAX_CODES_PER_USER", default=120)
MARKET_WS_MAX_CONNECTIONS_PER_USER = env.int("MARKET_WS_MAX_CONNECTIONS_PER_USER", default=8)
MARKET_WS_USER_MESSAGES_PER_MINUTE = env.int("MARKET_WS_USER_MESSAGES_PER_MINUTE", default=300)
# Most batch frames per second on one /ws/market/ connection; snapshots arriving faster are conflated into the
# next frame (the latest of each stock). 0 = no cap (one frame per write, still conflated while one is in flight).
MARKET_WS_MAX_FPS = env.float("MARKET_WS_MAX_FPS", default=40.0)

# --- Paper trading ------------------------------------------------------------------------------
# Orders placed while the market is closed: "reject" (error market_closed) or "queue" (accepted as a DAY
# order for the next session; it fills from that session's first ticks).
PAPER_MARKET_CLOSED = env("PAPER_MARKET_CLOSED", default="reject")
# The fill engine (apps/trading/orders/engine.py): a consumer of the fill-tick stream in the group below, run as a
# bootstep by every Celery worker consuming the `default` queue (or `manage.py runfills`).
PAPER_FILL_ENGINE_ENABLED = env.bool("PAPER_FILL_ENGINE_ENABLED", default=True)
PAPER_FILL_GROUP = env("PAPER_FILL_GROUP", default="fills")
PAPER_FILL_BATCH = env.int("PAPER_FILL_BATCH", default=200)  # ticks read per XREADGROUP
PAPER_FILL_BLOCK_MS = env.int("PAPER_FILL_BLOCK_MS", default=1000)  # longest wait for new ticks
# A tick another consumer read but did not ack for this long is claimed (that consumer died).
PAPER_FILL_CLAIM_IDLE_MS = env.int("PAPER_FILL_CLAIM_IDLE_MS", default=30_000)
PAPER_FILL_DEMAND_SYNC = env.float("PAPER_FILL_DEMAND_SYNC", default=30.0)  # s between ORDERS_SET rebuilds
PAPER_FILL_HEARTBEAT = env.float("PAPER_FILL_HEARTBEAT", default=60.0)  # s between heartbeat log lines
PAPER_FILL_EXPIRY_CHECK = env.float("PAPER_FILL_EXPIRY_CHECK", default=60.0)  # s between DAY-order expiry checks
PAPER_FILL_BACKOFF_BASE = env.float("PAPER_FILL_BACKOFF_BASE", default=0.5)  # s, doubled per consecutive error
PAPER_FILL_BACKOFF_MAX = env.float("PAPER_FILL_BACKOFF_MAX", default=30.0)

# Strategies (apps/strategies): operator-deployed strategy modules (dotted paths, comma-separated), the live host
# that runs in every worker consuming the default queue (like the fill engine), and backtest bounds.
HOGA_STRATEGY_PACKAGES = env.list("HOGA_STRATEGY_PACKAGES", default=[])
STRATEGY_HOST_ENABLED = env.bool("STRATEGY_HOST_ENABLED", default=True)
STRATEGY_GROUP = env("STRATEGY_GROUP", default="strategies")  # consumer group on the fill-tick stream
STRATEGY_BLOCK_MS = env.int("STRATEGY_BLOCK_MS", default=1000)
STRATEGY_MAX_CODES = env.int("STRATEGY_MAX_CODES", default=50)  # stocks one strategy may watch
STRATEGY_BACKTESTS_ACTIVE_MAX = env.int("STRATEGY_BACKTESTS_ACTIVE_MAX", default=3)  # queued or running, per user
STRATEGY_MAX_PER_USER = env.int("STRATEGY_MAX_PER_USER", default=50)  # strategies one user may keep
# A stored order book older (by its own time) than this vs the tick is ignored: MARKET orders then fill at
# the trade price instead of walking the book.
PAPER_BOOK_MAX_AGE = env.float("PAPER_BOOK_MAX_AGE", default=10.0)

# --- Browser tests (tests/browser, scripts/screenshots.py) ----------------------------------------
# The Chromium binary Playwright drives; `make browser` installs Debian's chromium at the default path.
HOGA_BROWSER = env("HOGA_BROWSER", default="/usr/bin/chromium")

# --- Condition search (Kiwoom 조건검색, apps/conditions) ----------------------------------------------
# Slack incoming webhook (https://api.slack.com/messaging/webhooks) for condition alerts; empty = no Slack.
CONDITIONS_SLACK_WEBHOOK_URL = env("CONDITIONS_SLACK_WEBHOOK_URL", default="")
CONDITIONS_SLACK_TIMEOUT = env.float("CONDITIONS_SLACK_TIMEOUT", default=5.0)  # seconds per webhook POST
CONDITIONS_EMAIL_FROM = env("CONDITIONS_EMAIL_FROM", default="hoga@localhost")  # sender of alert e-mails
# The same stock entering (or leaving) the same condition again within this many seconds is notified once.
CONDITIONS_DEDUPE_WINDOW = env.int("CONDITIONS_DEDUPE_WINDOW", default=300)
# At most this many notifications per condition per minute; the rest are summarised in one message.
CONDITIONS_RATE_LIMIT = env.int("CONDITIONS_RATE_LIMIT", default=10)
CONDITIONS_RECONCILE_INTERVAL = env.int("CONDITIONS_RECONCILE_INTERVAL", default=30)  # s between normal searches
CONDITIONS_ORDER_QUANTITY = env.int("CONDITIONS_ORDER_QUANTITY", default=1)  # shares of the one-click paper buy

# --- Notifications (apps/notifications): fills, rejections, cancels, daily summary ------------------
# Fernet keys (https://cryptography.io/en/latest/fernet/) encrypting the users' Slack webhook URLs and Telegram
# bot tokens, comma-separated: the first encrypts, all decrypt (rotate by prepending a new key). Empty: derived
# from DJANGO_SECRET_KEY (fine for development; set your own in production).
NOTIFICATIONS_ENCRYPTION_KEYS = env.list("NOTIFICATIONS_ENCRYPTION_KEYS", default=[])
NOTIFICATIONS_EMAIL_FROM = env("NOTIFICATIONS_EMAIL_FROM", default="hoga@localhost")
# Slack incoming webhooks live on this host (https://api.slack.com/messaging/webhooks); https only.
NOTIFICATIONS_SLACK_HOSTS = env.list("NOTIFICATIONS_SLACK_HOSTS", default=["hooks.slack.com"])
# Telegram Bot API base (https://core.telegram.org/bots/api#making-requests).
NOTIFICATIONS_TELEGRAM_API_URL = env("NOTIFICATIONS_TELEGRAM_API_URL", default="https://api.telegram.org")
# Origins (scheme://host:port) also accepted as webhook / Bot API destinations: a local stand-in server for
# tests and rehearsals. Empty in production.
NOTIFICATIONS_LOCAL_ORIGINS = env.list("NOTIFICATIONS_LOCAL_ORIGINS", default=[])
NOTIFICATIONS_HTTP_TIMEOUT = env.float("NOTIFICATIONS_HTTP_TIMEOUT", default=5.0)  # seconds per webhook / Bot API call
# At most this many messages per channel per window (seconds); the excess waits and is sent by the next flush.
NOTIFICATIONS_RATE_LIMIT = env.int("NOTIFICATIONS_RATE_LIMIT", default=20)
NOTIFICATIONS_RATE_WINDOW = env.int("NOTIFICATIONS_RATE_WINDOW", default=60)
NOTIFICATIONS_VERIFY_TTL = env.int("NOTIFICATIONS_VERIFY_TTL", default=600)  # seconds a verification code is valid
NOTIFICATIONS_VERIFY_INTERVAL = env.int("NOTIFICATIONS_VERIFY_INTERVAL", default=30)  # s between codes per channel
NOTIFICATIONS_VERIFY_RATE_PER_HOUR = env.int("NOTIFICATIONS_VERIFY_RATE_PER_HOUR", default=10)  # codes per user
# How long a process trusts its copy of the channels' version token (apps/notifications/hooks.py): a channel
# enabled or verified in another process is heard of by the fill engines within this many seconds.
NOTIFICATIONS_LISTENERS_RECHECK = env.float("NOTIFICATIONS_LISTENERS_RECHECK", default=1.0)

# --- Portfolio analytics (apps/portfolio) ----------------------------------------------------------
# Annual risk-free rate for Sharpe and Sortino, e.g. 0.03 for 3 % (a KTB yield); daily rate = (1 + r)^(1/252) - 1.
PORTFOLIO_RISK_FREE_RATE = env.float("PORTFOLIO_RISK_FREE_RATE", default=0.0)
PORTFOLIO_TRADING_DAYS = env.int("PORTFOLIO_TRADING_DAYS", default=252)  # periods per year for annualising
# The benchmark of the equity curve: a stock code with stored daily bars (KOSPI index bars when the data has them).
PORTFOLIO_BENCHMARK_CODE = env("PORTFOLIO_BENCHMARK_CODE", default="KOSPI")

# --- Logging: one line per event, tagged with the process role --------------------------------
HOGA_PROCESS_ROLE = env("HOGA_PROCESS_ROLE", default="web")
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOG_FORMAT = env("LOG_FORMAT", default="text")  # text | json
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"role": {"()": "apps.core.logging.RoleFilter", "role": HOGA_PROCESS_ROLE}},
    "formatters": {
        "text": {"()": "apps.core.logging.KeyValueFormatter"},
        "json": {"()": "apps.core.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["role"],
            "formatter": LOG_FORMAT,
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
        "asyncio": {"level": "WARNING"},
        "websockets": {"level": "WARNING"},
        "aiohttp.access": {"level": "WARNING"},
    },
}

# --- Investor flows and financial statements (apps.fundamentals) ------------------------------------------------
# KRW per unit of the investor TRs' value fields (*_tr_pbmn): 백만원 per the sandbox and community code, UNCONFIRMED
# in kis-api.md §5.6.
KIS_INVESTOR_VALUE_UNIT = env.int("KIS_INVESTOR_VALUE_UNIT", default=1_000_000)
# Intraday 외국인/기관 estimates (HHPTJ04160200 종목별 외인기관 추정가집계): not in kis-api.md; the path follows KIS's
# open-trading-api samples (an assumption). Off = the estimate job does nothing.
KIS_INVESTOR_ESTIMATES = env.bool("KIS_INVESTOR_ESTIMATES", default=True)
KIS_INVESTOR_ESTIMATE_PATH = env(
    "KIS_INVESTOR_ESTIMATE_PATH", default="/uapi/domestic-stock/v1/quotations/investor-trend-estimate"
)
# Financial statements are refreshed every FUNDAMENTALS_STATEMENT_SEASON_DAYS inside the earnings seasons (MM-DD:MM-DD
# windows, KST; quarterly reports are due 45 days after the quarter, annual ones 90 days: an assumption, not in
# krx-rules.md) and every FUNDAMENTALS_STATEMENT_OFF_SEASON_DAYS outside them.
FUNDAMENTALS_STATEMENT_SEASONS = env(
    "FUNDAMENTALS_STATEMENT_SEASONS", default="01-15:03-31,04-15:05-20,07-15:08-20,10-15:11-20"
)
FUNDAMENTALS_STATEMENT_SEASON_DAYS = env.int("FUNDAMENTALS_STATEMENT_SEASON_DAYS", default=1)
FUNDAMENTALS_STATEMENT_OFF_SEASON_DAYS = env.int("FUNDAMENTALS_STATEMENT_OFF_SEASON_DAYS", default=7)

# --- Orders at the broker (apps.brokerage) -------------------------------------------------------------------------
# Passphrases (comma-separated) that encrypt the per-account broker keys (AES-256-GCM): the first encrypts, all
# decrypt; empty = SECRET_KEY. Rotate: put the new one first, run `manage.py brokerage_rotate_keys`, then drop the old.
BROKERAGE_SECRET_KEYS = env("BROKERAGE_SECRET_KEYS", default="")
# Execution notices of linked accounts: every default worker supervises them, one worker per link (a Redis lease).
BROKER_NOTICES_ENABLED = env.bool("BROKER_NOTICES_ENABLED", default=True)
BROKER_NOTICE_SCAN_S = env.float("BROKER_NOTICE_SCAN_S", default=10.0)  # s between looks at the active links
BROKER_NOTICE_LEASE_S = env.int("BROKER_NOTICE_LEASE_S", default=45)  # a dead worker's links move after this
BROKER_NOTICE_HEARTBEAT_S = env.float("BROKER_NOTICE_HEARTBEAT_S", default=300.0)
