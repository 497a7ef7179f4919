from django.apps import AppConfig


class ConditionsConfig(AppConfig):
    name = "apps.conditions"
    label = "conditions"
    verbose_name = "Condition search (조건검색)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # deferred: apps register their hooks once the app registry is ready (models importable)
        from apps.core.schedules import register_schedules
        from apps.live.feed.conditions import register_condition_hooks

        from .feed import condition_alert_record, enabled_condition_seqs
        from .tasks import condition_schedules

        register_schedules(condition_schedules)
        register_condition_hooks(enabled_condition_seqs, condition_alert_record)
