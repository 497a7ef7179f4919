"""Per-account broker secrets, encrypted at rest with AES-256-GCM under keys from settings.

``BROKERAGE_SECRET_KEYS`` (default: ``SECRET_KEY``) is a comma-separated list of passphrases: the first encrypts,
every one decrypts, so a key is rotated by putting the new one first, running ``manage.py brokerage_rotate_keys``
(re-encrypts every stored secret under the first key) and then removing the old one. Each ciphertext names its
key by an 8-hex id. The secrets are never logged and never shown back (only a four-character hint).
"""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


class VaultError(Exception):
    pass


def _keys() -> list[tuple[str, AESGCM]]:
    configured = str(settings.BROKERAGE_SECRET_KEYS or "") or str(settings.SECRET_KEY or "")
    raw = [k.strip() for k in configured.split(",") if k.strip()]
    if not raw:
        raise VaultError("BROKERAGE_SECRET_KEYS and SECRET_KEY are empty: broker secrets cannot be stored")
    out = []
    for passphrase in raw:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"hoga.brokerage.v1").derive(
            passphrase.encode()
        )
        out.append((hashlib.sha256(key).hexdigest()[:8], AESGCM(key)))
    return out


def seal(secret: str, *, context: str) -> str:
    """``<key id>:<base64(nonce || ciphertext+tag)>``; ``context`` (e.g. the link's account id and field) is bound
    as associated data, so a ciphertext copied to another row does not decrypt."""
    key_id, cipher = _keys()[0]
    nonce = os.urandom(12)
    return f"{key_id}:{base64.b64encode(nonce + cipher.encrypt(nonce, secret.encode(), context.encode())).decode()}"


def unseal(blob: str, *, context: str) -> str:
    key_id, _, payload = blob.partition(":")
    for kid, cipher in _keys():
        if kid == key_id:
            raw = base64.b64decode(payload)
            try:
                return cipher.decrypt(raw[:12], raw[12:], context.encode()).decode()
            except InvalidTag as exc:
                raise VaultError("a broker secret does not decrypt (wrong row or tampered)") from exc
    raise VaultError(f"no configured key has id {key_id!r} (rotated away?)")


def sealed_with_current_key(blob: str) -> bool:
    return blob.partition(":")[0] == _keys()[0][0]
