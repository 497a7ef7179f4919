from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from apps.core.views import healthz, home

urlpatterns = [
    path("", home, name="home"),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/paper-trading/", include("apps.accounts.urls")),
    path("api/paper-trading/", include("apps.orders.urls")),
    path("api/paper-trading/", include("apps.positions.urls")),
    path("api/marketdata/", include("apps.marketdata.urls")),
]
