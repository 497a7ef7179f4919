from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "apps.notifications"
    label = "notifications"
    verbose_name = "Notifications (fills, rejections, cancels, daily summary)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # deferred: hooks are connected once the app registry is ready (models importable)
        from apps.core.schedules import register_schedules
        from apps.trading.orders.realtime import order_events_committed

        from .hooks import order_events_received
        from .tasks import notification_schedules

        order_events_committed.connect(order_events_received, dispatch_uid="notifications.order_events")
        register_schedules(notification_schedules)
