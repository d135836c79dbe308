"""The managed-identity endpoint (App Service form, as Flex provides it) and token checks.

Tokens are opaque to callers: `lbt1.<base64url claims>.<hmac>`. The claims name the audience and
the caller's object id and carry a real-time expiry (24 h), as the design asks.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from emulator.errors import ArmError

TOKEN_LIFETIME_SECONDS = 24 * 3600
ARM_AUDIENCES = (
    "https://management.azure.com/",
    "https://management.azure.com",
    "https://management.core.windows.net/",
    "https://management.core.windows.net",
)


@dataclass(frozen=True)
class Caller:
    object_id: str
    client_id: str
    audience: str
    expires_on: int


class TokenAuthority:
    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self._key = secrets.token_bytes(32)
        self.identity_header = secrets.token_hex(16)
        self._verified: dict[str, Caller] = {}  # good tokens already checked

    def _sign(self, payload: bytes) -> str:
        digest = hmac.new(self._key, payload, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def mint(self, audience: str, object_id: str, client_id: str) -> tuple[str, int]:
        expires_on = int(time.time()) + TOKEN_LIFETIME_SECONDS
        claims = {
            "aud": audience,
            "oid": object_id,
            "appid": client_id,
            "tid": self.tenant_id,
            "exp": expires_on,
            "n": secrets.token_hex(4),
        }
        payload = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode())
        body = payload.rstrip(b"=")
        return f"lbt1.{body.decode()}.{self._sign(body)}", expires_on

    def verify(self, authorization: str | None, audiences: tuple[str, ...]) -> Caller:
        """Return the caller, or raise the 401 ARM gives for this token."""
        authority = f"https://login.windows.net/{self.tenant_id}"
        if not authorization:
            raise ArmError(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
                headers={
                    "WWW-Authenticate": f'Bearer authorization_uri="{authority}", '
                    'error="invalid_token", error_description="The authentication failed '
                    "because of missing 'Authorization' header.\""
                },
            )
        scheme, _, token = authorization.partition(" ")
        cached = self._verified.get(token)
        if cached is not None and cached.expires_on > time.time() and cached.audience in audiences:
            return cached
        if scheme.lower() != "bearer" or not token:
            raise ArmError(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is provided in an invalid "
                "format.",
            )
        parts = token.split(".")
        claims = None
        if (
            len(parts) == 3
            and parts[0] == "lbt1"
            and hmac.compare_digest(self._sign(parts[1].encode()), parts[2])
        ):
            padded = parts[1] + "=" * (-len(parts[1]) % 4)
            claims = json.loads(base64.urlsafe_b64decode(padded))
        if claims is None:
            raise ArmError(
                401,
                "InvalidAuthenticationToken",
                "The access token is invalid.",
                headers={
                    "WWW-Authenticate": f'Bearer authorization_uri="{authority}", '
                    'error="invalid_token", error_description="The access token is invalid."'
                },
            )
        if claims["exp"] <= int(time.time()):
            raise ArmError(
                401,
                "ExpiredAuthenticationToken",
                "The access token expiry UTC time is earlier than current UTC time.",
                headers={
                    "WWW-Authenticate": f'Bearer authorization_uri="{authority}", '
                    'error="invalid_token", error_description="The access token has expired."'
                },
            )
        if claims["aud"] not in audiences:
            allowed = ",".join(f"'{a}'" for a in audiences)
            raise ArmError(
                401,
                "InvalidAuthenticationTokenAudience",
                f"The access token has been obtained for wrong audience or resource "
                f"'{claims['aud']}'. It should exactly match with one of the allowed audiences "
                f"{allowed}.",
                headers={
                    "WWW-Authenticate": f'Bearer authorization_uri="{authority}", '
                    'error="invalid_token", error_description="The access token is from the '
                    'wrong audience or resource."'
                },
            )
        caller = Caller(
            object_id=claims["oid"],
            client_id=claims["appid"],
            audience=claims["aud"],
            expires_on=claims["exp"],
        )
        if len(self._verified) > 10000:
            self._verified.clear()
        self._verified[token] = caller
        return caller
