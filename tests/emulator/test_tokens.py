"""Token checks without a server: expiry is real time, audience and signature are enforced."""

from __future__ import annotations

import time

import pytest

from emulator.errors import ArmError
from emulator.identity import ARM_AUDIENCES, TokenAuthority


def test_tokens_expire_in_real_time(monkeypatch: pytest.MonkeyPatch) -> None:
    authority = TokenAuthority("tenant")
    token, expires_on = authority.mint("https://management.azure.com/", "oid-1", "client-1")
    assert expires_on - time.time() == pytest.approx(86400, abs=5)
    caller = authority.verify(f"Bearer {token}", ARM_AUDIENCES)
    assert (caller.object_id, caller.audience) == ("oid-1", "https://management.azure.com/")
    monkeypatch.setattr(time, "time", lambda: expires_on + 1.0)
    with pytest.raises(ArmError) as info:
        authority.verify(f"Bearer {token}", ARM_AUDIENCES)
    assert (info.value.status, info.value.code) == (401, "ExpiredAuthenticationToken")


def test_another_authority_token_is_invalid() -> None:
    token, _ = TokenAuthority("tenant").mint("https://management.azure.com/", "oid", "client")
    with pytest.raises(ArmError) as info:
        TokenAuthority("tenant").verify(f"Bearer {token}", ARM_AUDIENCES)
    assert info.value.code == "InvalidAuthenticationToken"
