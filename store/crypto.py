"""Encryption of sensitive fields at rest (SPEC §9): AES-256-GCM, key from configuration.

The key is ``JOURNEYS_DATA_KEY``: 32 random bytes, base64-encoded
(``python -c "import os,base64;print(base64.b64encode(os.urandom(32)).decode())"``).
There is deliberately no default key: without one, nothing sensitive can be stored.
Stored value: 12-byte nonce || ciphertext || 16-byte tag.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_ENV = "JOURNEYS_DATA_KEY"
_NONCE_BYTES = 12
# Binds a ciphertext to its field, so an ID number's ciphertext cannot be passed off as another field's.
_DEFAULT_CONTEXT = b"customer.id_number"


class DataKeyError(RuntimeError):
    """No usable data key is configured."""


def data_key_configured() -> bool:
    return bool(os.environ.get(KEY_ENV, "").strip())


def load_key() -> bytes:
    raw = os.environ.get(KEY_ENV, "").strip()
    if not raw:
        raise DataKeyError(
            f"{KEY_ENV} is not set: sensitive fields (ID numbers) are stored encrypted and need a key "
            "(32 random bytes, base64-encoded)"
        )
    try:
        key = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise DataKeyError(f"{KEY_ENV} is not valid base64") from None
    if len(key) != 32:
        raise DataKeyError(f"{KEY_ENV} must decode to 32 bytes (AES-256), not {len(key)}")
    return key


class FieldCipher:
    """AES-256-GCM for one field; build once per import/export, not per value."""

    def __init__(self, key: bytes | None = None, context: bytes = _DEFAULT_CONTEXT) -> None:
        self._aead = AESGCM(key if key is not None else load_key())
        self._context = context

    def encrypt(self, plaintext: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext.encode("utf-8"), self._context)

    def decrypt(self, blob: bytes) -> str:
        nonce, body = blob[:_NONCE_BYTES], blob[_NONCE_BYTES:]
        return self._aead.decrypt(nonce, body, self._context).decode("utf-8")


def encrypt_field(plaintext: str) -> bytes:
    return FieldCipher().encrypt(plaintext)


def decrypt_field(blob: bytes) -> str:
    return FieldCipher().decrypt(blob)
