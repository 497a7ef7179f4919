from django.apps import AppConfig


class MarketDataConfig(AppConfig):
    name = "apps.marketdata"
    label = "marketdata"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # deferred: apps register their hooks once the app registry is ready (models importable)
        from django.db.models.signals import post_delete, post_save

        from apps.core.health import register_check
        from apps.core.metrics import register_scrape_collector
        from apps.core.schedules import register_schedules

        from .health import check_broker, check_market_data
        from .metrics import BrokerSharedCollector
        from .models import BrokerCalendarDay, CalendarOverride, Stock
        from .schedules import marketdata_schedules
        from .selectors import calendar_cache_clear, stocks_cache_clear

        register_schedules(marketdata_schedules)
        register_check("broker", check_broker)
        register_check("market_data", check_market_data)
        register_scrape_collector(BrokerSharedCollector())

        post_save.connect(stocks_cache_clear, sender=Stock, dispatch_uid="stock-cache")
        post_delete.connect(stocks_cache_clear, sender=Stock, dispatch_uid="stock-cache-delete")

        for model in (CalendarOverride, BrokerCalendarDay):  # the process's cached calendar is rebuilt
            post_save.connect(calendar_cache_clear, sender=model, dispatch_uid=f"calendar-cache-{model.__name__}")
            post_delete.connect(calendar_cache_clear, sender=model, dispatch_uid=f"calendar-cache-{model.__name__}-d")
