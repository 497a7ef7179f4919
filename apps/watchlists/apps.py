from django.apps import AppConfig


class WatchlistsConfig(AppConfig):
    name = "apps.watchlists"
    label = "watchlists"
    verbose_name = "Watchlists (관심종목)"
    default_auto_field = "django.db.models.BigAutoField"
