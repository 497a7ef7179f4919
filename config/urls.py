from django.contrib import admin
from django.urls import include, path
from django.views.i18n import JavaScriptCatalog
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from apps.brokerage.urls import page_urlpatterns as broker_page_urlpatterns
from apps.conditions.urls import page_urlpatterns
from apps.core.i18n import language_set
from apps.core.metrics import metrics_view
from apps.core.views import healthz
from apps.notifications.urls import page_urlpatterns as notification_page_urlpatterns
from apps.strategies.urls import page_urlpatterns as strategy_page_urlpatterns

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("i18n/setlang/", language_set, name="set_language"),
    path("i18n/js/", JavaScriptCatalog.as_view(), name="javascript-catalog"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/paper-trading/", include("apps.trading.accounts.urls")),
    path("api/paper-trading/", include("apps.trading.orders.urls")),
    path("api/paper-trading/", include("apps.trading.positions.urls")),
    path("api/marketdata/", include("apps.marketdata.urls")),
    path("api/marketdata/", include("apps.live.urls")),
    path("api/fundamentals/", include("apps.fundamentals.urls")),
    path("api/brokerage/", include("apps.brokerage.urls")),
    path("api/conditions/", include("apps.conditions.urls")),
    path("api/watchlists/", include("apps.watchlists.urls")),
    path("conditions/", include((page_urlpatterns, "conditions"))),
    path("api/notifications/", include("apps.notifications.urls")),
    path("notifications/", include((notification_page_urlpatterns, "notifications"))),
    path("api/portfolio/", include("apps.portfolio.urls")),
    path("api/strategies/", include("apps.strategies.urls")),
    path("strategies/", include((strategy_page_urlpatterns, "strategies"))),
    path("broker/", include((broker_page_urlpatterns, "brokerage"))),
    path("", include("apps.pages.urls")),
]
