from django.apps import AppConfig


class BrokerageConfig(AppConfig):
    """Orders of a paper account linked to a broker account, executed at the broker (KIS 모의투자 or, with an explicit
    opt-in, a real account): per-account encrypted keys, the order rules, execution notices and reconciliation."""

    name = "apps.brokerage"
    label = "brokerage"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # deferred: apps register their hooks once the app registry is ready (models importable)
        from apps.core.schedules import register_schedules
        from apps.trading.orders.executors import register_order_executor

        from .executor import BrokerOrderExecutor
        from .schedules import brokerage_schedules

        register_schedules(brokerage_schedules)
        register_order_executor(BrokerOrderExecutor())  # linked accounts' orders go to the broker
