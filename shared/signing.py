"""Signed queue messages: queue data rights alone must not let anyone ask Lifeboat for work.

Every envelope Lifeboat sends carries `sig`: `<key id>:<base64url HMAC-SHA256>` over the
envelope's canonical JSON (sorted keys, no spaces, without `sig`). The keys come from the
`MESSAGE_SIGNING_KEYS` app setting (a Key Vault reference in Azure), `id=secret,id=secret`:
the first signs, every one verifies, so a key can be rotated by putting the new one first and
removing the old one once the queues have drained. A message without a valid signature is
refused on its first delivery, before anything else reads it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

SIGNATURE_FIELD = "sig"
MIN_KEY_BYTES = 32


class SignatureError(ValueError):
    """A message whose signature is missing, malformed, or made with no key Lifeboat holds."""


@dataclass(frozen=True, slots=True)
class SigningKeys:
    keys: tuple[tuple[str, bytes], ...]

    @classmethod
    def parse(cls, text: str) -> SigningKeys:
        """`id=base64secret[,id=base64secret...]`; every secret at least 32 bytes."""
        keys: list[tuple[str, bytes]] = []
        for entry in (e.strip() for e in text.split(",")):
            if not entry:
                continue
            key_id, sep, secret = entry.partition("=")
            key_id = key_id.strip()
            if not sep or not key_id.isalnum() or len(key_id) > 32:
                raise ValueError(
                    "each key is id=base64secret, the id letters and digits (at most 32)"
                )
            try:
                raw = base64.b64decode(secret.strip() + "==", altchars=b"-_", validate=False)
            except (binascii.Error, ValueError):
                raise ValueError(f"key {key_id}: the secret is not base64") from None
            if len(raw) < MIN_KEY_BYTES:
                raise ValueError(f"key {key_id}: at least {MIN_KEY_BYTES} bytes, got {len(raw)}")
            if any(known == key_id for known, _ in keys):
                raise ValueError(f"key id {key_id} is given twice")
            keys.append((key_id, raw))
        if not keys:
            raise ValueError("no key: give at least one id=base64secret")
        return cls(tuple(keys))

    def sign(self, text: str) -> str:
        """The envelope's JSON text with its signature (made with the first key)."""
        raw = json.loads(text)
        raw.pop(SIGNATURE_FIELD, None)
        key_id, key = self.keys[0]
        raw[SIGNATURE_FIELD] = f"{key_id}:{_mac(key, raw)}"
        return json.dumps(raw, separators=(",", ":"), ensure_ascii=False)

    def verify(self, raw: dict[str, Any]) -> None:
        """Raises SignatureError unless `raw` (a parsed envelope) is signed by a held key."""
        signature = raw.get(SIGNATURE_FIELD)
        if not isinstance(signature, str) or not signature:
            raise SignatureError("unsigned: Lifeboat only acts on messages it signed")
        key_id, _, mac = signature.partition(":")
        key = dict(self.keys).get(key_id)
        if key is None:
            raise SignatureError(f"signed with key {key_id[:32]!r}, which Lifeboat does not hold")
        body = {k: v for k, v in raw.items() if k != SIGNATURE_FIELD}
        if not hmac.compare_digest(mac, _mac(key, body)):
            raise SignatureError("the signature does not match the message (altered or forged)")


def _mac(key: bytes, body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hmac.new(key, canonical.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")
