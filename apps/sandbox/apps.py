"""Django app config for the sandbox KIS broker (no models)."""

from django.apps import AppConfig


class SandboxConfig(AppConfig):
    """The sandbox broker: a local KIS Open API look-alike replaying recorded KRX data."""

    name = "apps.sandbox"
    label = "sandbox"
    verbose_name = "Sandbox KIS broker"
    default_auto_field = "django.db.models.BigAutoField"
