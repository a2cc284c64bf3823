"""WeChat's message encryption ("safe mode") for the callbacks WeChat pushes to us.

In safe mode the body's ``<Encrypt>`` carries the message and the URL carries
``msg_signature``, which signs the body too (plain mode's ``signature`` covers only the
token, timestamp and nonce). The scheme, as WeChat documents it:

- AESKey = base64decode(EncodingAESKey + "="): 32 bytes from the 43-character key;
- AES-256-CBC, IV = the key's first 16 bytes, PKCS#7 padding to 32-byte blocks;
- plaintext = 16 random bytes + message length (4 bytes, big-endian) + message + AppID;
- msg_signature = sha1 of the sorted, concatenated token, timestamp, nonce and Encrypt.

Decrypt only what ``msg_signature`` has vouched for: whoever lacks the token then cannot
probe the padding check with ciphertexts of their own.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = ["WeChatCrypto", "WeChatCryptoError", "WrongAppId", "aes_key_from", "msg_signature"]

_ENCODING_AES_KEY = re.compile(r"[A-Za-z0-9]{43}")
_PAD_BLOCK = 32  # WeChat pads to the key's length, not AES's 16-byte block
_RANDOM_PREFIX = 16
_LENGTH_BYTES = 4


class WeChatCryptoError(ValueError):
    """An ``Encrypt`` value that does not decrypt to a message in WeChat's layout."""


class WrongAppId(WeChatCryptoError):
    """A message that decrypts but names another official account's AppID."""


def msg_signature(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    """sha1 of the sorted, concatenated token, timestamp, nonce and ``Encrypt`` value (hex)."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypted])).encode("utf-8")).hexdigest()  # nosec B324 # SHA-1 is what WeChat's message signature specifies


def aes_key_from(encoding_aes_key: str) -> bytes:
    """The 32-byte AES key from an EncodingAESKey; ValueError (never quoting the key) if it is not one."""
    if not _ENCODING_AES_KEY.fullmatch(encoding_aes_key):
        raise ValueError("an EncodingAESKey is 43 letters and digits")
    key = base64.b64decode(encoding_aes_key + "=")
    if len(key) != 32:  # pragma: no cover - 43 base64 characters always give 32 bytes
        raise ValueError("an EncodingAESKey decodes to 32 bytes")
    return key


class WeChatCrypto:
    """Decrypts the ``Encrypt`` of one official account (its EncodingAESKey and AppID)."""

    def __init__(self, encoding_aes_key: str, appid: str) -> None:
        if not appid:
            raise ValueError("safe mode needs the official account's AppID")
        self._key = aes_key_from(encoding_aes_key)
        self._appid = appid.encode("utf-8")

    def decrypt(self, encrypted: str) -> bytes:
        """The message (XML bytes) inside an ``Encrypt`` value; WeChatCryptoError if it is not one."""
        try:
            data = base64.b64decode(encrypted, validate=True)
        except (binascii.Error, ValueError):
            raise WeChatCryptoError("Encrypt is not base64") from None
        if not data or len(data) % 16:
            raise WeChatCryptoError("Encrypt is not whole AES blocks")
        decryptor = Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16])).decryptor()
        plain = decryptor.update(data) + decryptor.finalize()
        pad = plain[-1]
        if not 1 <= pad <= _PAD_BLOCK or pad > len(plain) or plain[-pad:] != bytes([pad]) * pad:
            raise WeChatCryptoError("Encrypt does not decrypt with this EncodingAESKey (bad padding)")
        plain = plain[:-pad]
        start = _RANDOM_PREFIX + _LENGTH_BYTES
        if len(plain) < start:
            raise WeChatCryptoError("decrypted Encrypt is too short")
        length = int.from_bytes(plain[_RANDOM_PREFIX:start], "big")
        if start + length > len(plain):
            raise WeChatCryptoError("decrypted Encrypt is shorter than the length it declares")
        message, appid = plain[start:start + length], plain[start + length:]
        if not hmac.compare_digest(appid, self._appid):
            raise WrongAppId("the message is for another AppID")
        return message
