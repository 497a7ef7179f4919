"""Which settings module a process uses.

``manage.py``, ``config/asgi.py`` and ``config/celery.py`` call :func:`ensure_settings_module` first. A
developer's shell may leave ``DJANGO_SETTINGS_MODULE`` unset and gets ``config.settings.local`` (debug on, a
fixed development secret). A deployed process never may: in the container image (``HOGA_CONTAINER``, set by
the Dockerfile) or any process started by role (``HOGA_PROCESS_ROLE``, set by ``bin/hoga-process``), a
missing module stops the process with the reason instead of silently running with debug settings.
"""

from __future__ import annotations

import os

LOCAL = "config.settings.local"
DEPLOYED_MARKERS = ("HOGA_CONTAINER", "HOGA_PROCESS_ROLE")


class SettingsModuleMissing(RuntimeError):
    pass


def ensure_settings_module(environ: dict | None = None) -> str:
    environ = os.environ if environ is None else environ
    module = (environ.get("DJANGO_SETTINGS_MODULE") or "").strip()
    if module:
        return module
    markers = [name for name in DEPLOYED_MARKERS if environ.get(name)]
    if markers:
        raise SettingsModuleMissing(
            f"DJANGO_SETTINGS_MODULE is not set and this is a deployed process ({', '.join(markers)} is set): "
            "set DJANGO_SETTINGS_MODULE=config.settings.production (or another module) explicitly."
        )
    environ["DJANGO_SETTINGS_MODULE"] = LOCAL
    return LOCAL
