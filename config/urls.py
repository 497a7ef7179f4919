from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from apps.conditions.urls import page_urlpatterns
from apps.core.views import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/paper-trading/", include("apps.accounts.urls")),
    path("api/paper-trading/", include("apps.orders.urls")),
    path("api/paper-trading/", include("apps.positions.urls")),
    path("api/marketdata/", include("apps.marketdata.urls")),
    path("api/conditions/", include("apps.conditions.urls")),
    path("conditions/", include((page_urlpatterns, "conditions"))),
    path("", include("apps.pages.urls")),
]
