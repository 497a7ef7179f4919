from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.contrib.auth.signals import user_logged_out

        from .signals import close_session_sockets

        user_logged_out.connect(close_session_sockets, dispatch_uid="hoga-close-session-sockets")
