from django.urls import path

from . import views

app_name = "pages"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("market/status.json", views.market_status_json, name="market-status"),
    path("stocks/", views.stock_search_page, name="stock-search"),
    path("watchlists/", views.watchlists_page, name="watchlists"),
    path("stocks/<str:code>/", views.stock_detail, name="stock"),
    path("portfolio/", views.portfolio, name="portfolio"),
    path("portfolio/live/", views.portfolio_live, name="portfolio-live"),
    path("orders/", views.orders, name="orders"),
    path("orders/live/", views.orders_live, name="orders-live"),
    path("orders/<int:order_id>/cancel/", views.order_cancel_view, name="order-cancel"),
    path(
        "orders/<str:executor>/<str:order_id>/cancel/", views.external_order_cancel_view, name="order-external-cancel"
    ),
    path("data-quality/", views.data_quality, name="data-quality"),
    path("accounts/signup/", views.signup, name="signup"),
    path("accounts/login/", views.HogaLoginView.as_view(), name="login"),
    path("accounts/logout/", views.HogaLogoutView.as_view(), name="logout"),
    path("accounts/email/", views.email_settings, name="email"),
    path("accounts/email/verify/<str:token>/", views.email_verify_view, name="email-verify"),
]
