"""Encryption of sensitive fields at rest (SPEC §9): AES-256-GCM, key from configuration.

The key is ``JOURNEYS_DATA_KEY``: 32 random bytes, base64-encoded
(``python -c "import os,base64;print(base64.b64encode(os.urandom(32)).decode())"``).
There is deliberately no default key: without one, nothing sensitive can be stored.

Stored value: ``SJK1`` || 4-byte key id || 12-byte nonce || ciphertext || 16-byte tag.
The key id (``key_id``) says which key wrote a value, so during a key rotation
(``journeys keys rotate``, ``store.key_rotation``) values under the old and the new key
coexist: keys listed in ``JOURNEYS_DATA_PREVIOUS_KEYS`` (comma-separated, base64) still
decrypt but never encrypt. Values written before key ids existed (nonce || ciphertext ||
tag, no prefix) are still read with any configured key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_ENV = "JOURNEYS_DATA_KEY"
PREVIOUS_KEYS_ENV = "JOURNEYS_DATA_PREVIOUS_KEYS"
_NONCE_BYTES = 12
FORMAT_PREFIX = b"SJK1"
_KEY_ID_BYTES = 4
_HEADER_BYTES = len(FORMAT_PREFIX) + _KEY_ID_BYTES
# Binds a ciphertext to its field, so an ID number's ciphertext cannot be passed off as another field's.
_DEFAULT_CONTEXT = b"customer.id_number"


class DataKeyError(RuntimeError):
    """No usable data key is configured."""


def data_key_configured() -> bool:
    return bool(os.environ.get(KEY_ENV, "").strip())


def decode_key(raw: str, name: str = KEY_ENV) -> bytes:
    """A base64 key as 32 bytes; ``name`` says where it came from in the error."""
    try:
        key = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise DataKeyError(f"{name} is not valid base64") from None
    if len(key) != 32:
        raise DataKeyError(f"{name} must decode to 32 bytes (AES-256), not {len(key)}")
    return key


def load_key(env: str = KEY_ENV) -> bytes:
    raw = os.environ.get(env, "").strip()
    if not raw:
        raise DataKeyError(
            f"{env} is not set: sensitive fields (ID numbers) are stored encrypted and need a key "
            "(32 random bytes, base64-encoded)"
        )
    return decode_key(raw, env)


def load_previous_keys() -> list[bytes]:
    """Keys that still decrypt (values not yet rotated) but never encrypt."""
    raw = os.environ.get(PREVIOUS_KEYS_ENV, "")
    return [decode_key(part, PREVIOUS_KEYS_ENV) for part in raw.split(",") if part.strip()]


def key_id(key: bytes) -> bytes:
    """A key's 4-byte fingerprint, stored with every value it encrypts (not secret, not the key)."""
    return hashlib.sha256(b"service-journeys/key-id/" + key).digest()[:_KEY_ID_BYTES]


def blob_key_id(blob: bytes) -> bytes | None:
    """The key id a stored value names, or None for a value written before key ids."""
    if blob[: len(FORMAT_PREFIX)] == FORMAT_PREFIX and len(blob) >= _HEADER_BYTES + _NONCE_BYTES + 16:
        return blob[len(FORMAT_PREFIX) : _HEADER_BYTES]
    return None


class FieldCipher:
    """AES-256-GCM for one field; build once per import/export, not per value."""

    def __init__(
        self,
        key: bytes | None = None,
        context: bytes = _DEFAULT_CONTEXT,
        *,
        previous_keys: list[bytes] | None = None,
    ) -> None:
        """``previous_keys`` default to ``JOURNEYS_DATA_PREVIOUS_KEYS`` when ``key`` comes from the
        environment too, and to none when ``key`` is given (a caller naming its key means that key)."""
        primary = key if key is not None else load_key()
        if previous_keys is None:
            previous_keys = load_previous_keys() if key is None else []
        self.key_id = key_id(primary)
        self._aead = AESGCM(primary)
        self._by_id = {self.key_id: self._aead}
        for old in previous_keys:
            self._by_id.setdefault(key_id(old), AESGCM(old))
        self._context = context

    def encrypt(self, plaintext: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return FORMAT_PREFIX + self.key_id + nonce + self._aead.encrypt(nonce, plaintext.encode("utf-8"), self._context)

    def decrypt(self, blob: bytes) -> str:
        kid = blob_key_id(blob)
        if kid is not None and kid in self._by_id:
            nonce, body = blob[_HEADER_BYTES : _HEADER_BYTES + _NONCE_BYTES], blob[_HEADER_BYTES + _NONCE_BYTES :]
            try:
                return self._by_id[kid].decrypt(nonce, body, self._context).decode("utf-8")
            except InvalidTag:
                pass  # a legacy value whose random nonce happens to start like a header: read it below
        # A value from before key ids: nonce || ciphertext || tag, under one of the configured keys.
        nonce, body = blob[:_NONCE_BYTES], blob[_NONCE_BYTES:]
        for aead in self._by_id.values():
            try:
                return aead.decrypt(nonce, body, self._context).decode("utf-8")
            except InvalidTag:
                continue
        raise InvalidTag("no configured key decrypts this value")


def encrypt_field(plaintext: str) -> bytes:
    return FieldCipher().encrypt(plaintext)


def decrypt_field(blob: bytes) -> str:
    return FieldCipher().decrypt(blob)
