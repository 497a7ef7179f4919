from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # deferred: apps register their hooks once the app registry is ready (models importable)
        from django.contrib.auth.signals import user_logged_in, user_logged_out

        from .i18n import copy_language_on_login
        from .signals import close_session_sockets

        user_logged_out.connect(close_session_sockets, dispatch_uid="hoga-close-session-sockets")
        user_logged_in.connect(copy_language_on_login, dispatch_uid="hoga-copy-language-on-login")
