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

        from django.db.models.signals import post_delete, post_save  # deferred: hooks after the registry is ready

        from apps.marketdata.models import DailyBar, ReferencePrice  # deferred: models need the app registry

        from .reference import reference_cache_clear  # deferred: imports the models

        for model in (DailyBar, ReferencePrice):  # a corrected close or base price is read again at once
            post_save.connect(reference_cache_clear, sender=model, dispatch_uid=f"reference-cache-{model.__name__}")
            post_delete.connect(reference_cache_clear, sender=model, dispatch_uid=f"reference-cache-{model.__name__}-d")
