"""The verified-token cache (gateway.auth.TokenCache): a token seen again skips the signature
check, and nothing the cache keeps makes an expired, forged or re-keyed token pass."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from gateway import auth
from gateway.auth import TokenCache, Unauthenticated, issue_token
from tests.conftest import SECRET

DEPARTMENTS = {"civil_affairs", "medical_insurance"}


def _token(ttl: timedelta = timedelta(hours=1), **claims: Any) -> str:
    fields: dict[str, Any] = {
        "subject": "u",
        "department": "civil_affairs",
        "org": "o",
        "regions": ["5104"],
    }
    fields.update(claims)
    return issue_token(SECRET, ttl=ttl, **fields)


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tokens PyJWT decoded (signature checked)."""
    seen: list[str] = []
    decode = jwt.decode

    def counted(token: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(token)
        return decode(token, *args, **kwargs)

    monkeypatch.setattr(auth.jwt, "decode", counted)
    return seen


def test_a_token_seen_again_is_not_decoded_again(decodes: list[str]) -> None:
    cache = TokenCache()
    token = _token(purpose="assistance review")
    first = cache.authenticate(f"Bearer {token}", SECRET, DEPARTMENTS)
    again = cache.authenticate(f"Bearer {token}", SECRET, DEPARTMENTS)
    assert first == again == auth.authenticate(f"Bearer {token}", SECRET, DEPARTMENTS)
    assert again.purpose == "assistance review"
    assert len(decodes) == 2, "once by the cache, once by the plain authenticate"
    assert len(cache) == 1


def test_a_cached_token_is_refused_once_expired() -> None:
    cache = TokenCache()
    token = _token(ttl=timedelta(seconds=1))
    exp = jwt.decode(token, SECRET, algorithms=["HS256"])["exp"]
    cache.authenticate(f"Bearer {token}", SECRET, DEPARTMENTS)
    while time.time() < exp + 0.05:
        time.sleep(0.05)
    with pytest.raises(Unauthenticated, match="expired"):
        cache.authenticate(f"Bearer {token}", SECRET, DEPARTMENTS)
    assert len(cache) == 0


def test_the_cache_checks_expiry_by_its_clock_on_every_use(decodes: list[str]) -> None:
    now = [time.time()]
    cache = TokenCache(clock=lambda: now[0])
    token = _token(ttl=timedelta(minutes=5))
    cache.authenticate(f"Bearer {token}", SECRET, DEPARTMENTS)
    now[0] += 301  # past exp: the entry is dropped, the token decoded (and checked) again
    cache.authenticate(f"Bearer {token}", SECRET, DEPARTMENTS)
    assert len(decodes) == 2


def test_an_already_expired_token_is_refused_and_not_kept() -> None:
    cache = TokenCache()
    past = datetime.now(UTC) - timedelta(hours=9)  # the default ttl is 8 h
    token = issue_token(
        SECRET, subject="u", department="civil_affairs", org="o", regions=["5104"], now=past
    )
    for _ in range(2):
        with pytest.raises(Unauthenticated, match="expired"):
            cache.authenticate(f"Bearer {token}", SECRET, DEPARTMENTS)
    assert len(cache) == 0


def test_forged_and_tampered_tokens_are_refused_after_a_good_one_is_cached() -> None:
    cache = TokenCache()
    good = _token()
    cache.authenticate(f"Bearer {good}", SECRET, DEPARTMENTS)
    claims = jwt.decode(good, SECRET, algorithms=["HS256"])
    forged = jwt.encode({**claims, "department": "medical_insurance"}, "another-secret-" + "y" * 40)
    with pytest.raises(Unauthenticated, match="signature"):
        cache.authenticate(f"Bearer {forged}", SECRET, DEPARTMENTS)
    header, _, signature = good.split(".")
    payload = base64.urlsafe_b64encode(json.dumps({**claims, "regions": ["5"]}).encode()).rstrip(
        b"="
    )
    tampered = f"{header}.{payload.decode()}.{signature}"
    with pytest.raises(Unauthenticated, match="signature"):
        cache.authenticate(f"Bearer {tampered}", SECRET, DEPARTMENTS)
    assert len(cache) == 1


def test_a_new_secret_or_a_department_gone_refuses_a_cached_token() -> None:
    cache = TokenCache()
    token = _token()
    cache.authenticate(f"Bearer {token}", SECRET, DEPARTMENTS)
    with pytest.raises(Unauthenticated, match="signature"):
        cache.authenticate(f"Bearer {token}", "rotated-secret-" + "z" * 40, DEPARTMENTS)
    with pytest.raises(Unauthenticated, match="unknown department"):
        cache.authenticate(f"Bearer {token}", SECRET, {"medical_insurance"})


def test_bad_headers_are_refused_as_before() -> None:
    cache = TokenCache()
    for header in (None, "", "Basic abc", "Bearer ", "Bearer not-a-jwt"):
        with pytest.raises(Unauthenticated) as cached:
            cache.authenticate(header, SECRET, DEPARTMENTS)
        with pytest.raises(Unauthenticated) as plain:
            auth.authenticate(header, SECRET, DEPARTMENTS)
        assert str(cached.value) == str(plain.value)
    assert len(cache) == 0


def test_the_cache_is_bounded() -> None:
    cache = TokenCache(size=2)
    for subject in ("a", "b", "c"):
        cache.authenticate(f"Bearer {_token(subject=subject)}", SECRET, DEPARTMENTS)
    assert len(cache) == 2
