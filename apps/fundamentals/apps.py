from django.apps import AppConfig


class FundamentalsConfig(AppConfig):
    """Investor flows (수급) and financial statements (재무제표) per stock: collected from the broker, served by
    the API and the stock page. Depends on marketdata (stocks, the calendar, collection runs) and the broker client."""

    name = "apps.fundamentals"
    label = "fundamentals"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # deferred: apps register their hooks once the app registry is ready (models importable)
        from apps.core.schedules import register_schedules

        from .schedules import fundamentals_schedules

        register_schedules(fundamentals_schedules)
