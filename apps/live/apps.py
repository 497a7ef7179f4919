from django.apps import AppConfig


class LiveConfig(AppConfig):
    """Live market: the feed holder, the fan-out to browsers, the quote store and its one reader."""

    name = "apps.live"
    label = "live"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # deferred: apps register their hooks once the app registry is ready (models importable)
        from apps.core.health import register_check

        from .health import check_feed

        register_check("feed", check_feed)
