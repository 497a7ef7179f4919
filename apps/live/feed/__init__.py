"""The real-time feed holder: one broker WebSocket per app key, held under a Redis lease.

Modules: :mod:`.lease` (exclusive holder per app key), :mod:`.demand` (which codes to subscribe),
:mod:`.holder` (the loop), :mod:`.bars` (live 1-minute bars), :mod:`.recorder` (raw frames to disk),
:mod:`.bootstep` (runs the holder inside the Celery worker that consumes the ``feed`` queue).
"""
