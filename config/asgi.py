"""ASGI entry point: HTTP through Django, WebSocket through Channels (session-authenticated)."""

from config.settings_module import ensure_settings_module

ensure_settings_module()

from apps.core.asgi_handler import pooled_asgi_application  # noqa: E402

# Django's ASGI handler, with each request's middleware and view in one thread of a fixed pool (WEB_THREADS)
django_asgi_app = pooled_asgi_application()

from apps.core.krx.calendar import calendar_warm_in_background  # noqa: E402

calendar_warm_in_background()  # the first page or API call must not wait ~10 s for XKRX

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from apps.conditions.routing import websocket_urlpatterns as conditions_ws  # noqa: E402
from apps.core.proxy import TrustedProxyMiddleware  # noqa: E402
from apps.core.routing import websocket_urlpatterns as core_ws  # noqa: E402
from apps.live.routing import websocket_urlpatterns as live_ws  # noqa: E402
from apps.trading.orders.routing import websocket_urlpatterns as orders_ws  # noqa: E402

# X-Forwarded-* are honoured only from HOGA_TRUSTED_PROXIES (apps/core/proxy.py) and removed otherwise.
application = TrustedProxyMiddleware(
    ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            "websocket": AllowedHostsOriginValidator(
                AuthMiddlewareStack(URLRouter([*core_ws, *live_ws, *orders_ws, *conditions_ws]))
            ),
        }
    ),
    trusted=settings.HOGA_TRUSTED_PROXIES,
)
