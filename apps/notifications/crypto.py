"""Encryption at rest of the users' own channel credentials (Slack webhook URLs, Telegram bot tokens).

Fernet (AES-128-CBC + HMAC-SHA256, ``cryptography``) with the keys of ``NOTIFICATIONS_ENCRYPTION_KEYS``: the
first key encrypts, every key decrypts (MultiFernet), so a key is rotated by putting the new one first.
Without a configured key one is derived from ``SECRET_KEY`` (SHA-256), so a development install works; a
deployment sets its own (``.env.example``).
"""

from __future__ import annotations

import base64
import hashlib
import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


def _fernet() -> MultiFernet:
    keys = [k for k in settings.NOTIFICATIONS_ENCRYPTION_KEYS if k]
    if not keys:
        keys = [base64.urlsafe_b64encode(hashlib.sha256(settings.SECRET_KEY.encode()).digest()).decode()]
    return MultiFernet([Fernet(k.encode() if isinstance(k, str) else k) for k in keys])


def encrypt(data: dict) -> str:
    return _fernet().encrypt(json.dumps(data, separators=(",", ":")).encode()).decode()


def decrypt(token: str) -> dict:
    """The stored dict; ``{}`` when the token cannot be read (a lost key): the channel must be set up again."""
    if not token:
        return {}
    try:
        return json.loads(_fernet().decrypt(token.encode()))
    except (InvalidToken, ValueError):
        return {}
