from django.apps import AppConfig


class PortfolioConfig(AppConfig):
    name = "apps.portfolio"
    label = "portfolio"
    verbose_name = "Portfolio analytics (equity snapshots, performance figures)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # deferred: apps register their schedules once the app registry is ready (models importable)
        from apps.core.schedules import register_schedules

        from .tasks import portfolio_schedules

        register_schedules(portfolio_schedules)
