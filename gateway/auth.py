"""Who is calling: bearer tokens (HS256 JWT) and the principal they carry.

A token's claims: ``sub`` (the user), ``department`` (one with an access policy), ``org`` (the
organisation, e.g. an insurer's code), ``regions`` (region-code prefixes it serves), optional
``purpose`` and ``exp``. Anything wrong with it is an :class:`Unauthenticated` error (HTTP 401).
Claims are bounded (:data:`CLAIM_LENGTHS`, at most ``max_regions`` prefixes, no control
characters): a token is checked the same way when it is issued and when it is presented.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from cachetools import LRUCache

ALGORITHM = "HS256"
_REGION_PREFIX = re.compile(r"\A[0-9]{1,6}\Z")
_DURATION = re.compile(r"\A([0-9]+)([smhd])\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
MAX_REGIONS = 64
"""Default of the ``max_token_regions`` setting."""
CLAIM_LENGTHS = {"sub": 120, "org": 120, "purpose": 80}
"""The longest text of each claim: the columns of the audit record that keep them."""


class Unauthenticated(Exception):
    """The request does not prove who is calling; the message says why (never echoes secrets)."""


@dataclass(frozen=True)
class Principal:
    subject: str
    department: str
    org: str
    regions: tuple[str, ...]
    purpose: str | None = None

    def serves_region(self, region_code: str) -> bool:
        """Example:

        >>> Principal("u", "civil_affairs", "o", ("5104",)).serves_region("510402")
        True
        """
        return any(region_code.startswith(prefix) for prefix in self.regions)


def parse_duration(text: str) -> timedelta:
    """Example:

    >>> parse_duration("8h")
    datetime.timedelta(seconds=28800)
    """
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"ttl = {text!r}: expected a number and a unit s, m, h or d (e.g. 8h)")
    amount, unit = int(match.group(1)), match.group(2)
    return timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[unit]: amount})


def issue_token(
    secret: str,
    *,
    subject: str,
    department: str,
    org: str,
    regions: Collection[str],
    purpose: str | None = None,
    ttl: timedelta = timedelta(hours=8),
    now: datetime | None = None,
    max_regions: int = MAX_REGIONS,
) -> str:
    """A signed token with these claims.

    :raises Unauthenticated: when a claim is out of bounds, as :func:`authenticate` would say.
    """
    issued = now or datetime.now(UTC)
    claims: dict[str, object] = {
        "sub": subject,
        "department": department,
        "org": org,
        "regions": list(regions),
        "iat": int(issued.timestamp()),
        "exp": int((issued + ttl).timestamp()),
    }
    if purpose:
        claims["purpose"] = purpose
    _principal(claims, (department,), max_regions)
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def authenticate(
    authorization: str | None,
    secret: str,
    known_departments: Collection[str],
    max_regions: int = MAX_REGIONS,
) -> Principal:
    """The principal of an ``Authorization: Bearer <JWT>`` header, or :class:`Unauthenticated`."""
    return _principal(verified(bearer(authorization), secret), known_departments, max_regions)


def bearer(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <JWT>`` header, or :class:`Unauthenticated`."""
    if not authorization:
        raise Unauthenticated("missing Authorization header (expected 'Bearer <token>')")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("malformed Authorization header (expected 'Bearer <token>')")
    return token


def verified(token: str, secret: str) -> dict[str, object]:
    """The claims of a token whose signature, ``exp`` (required, in the future), ``sub``
    (required), ``iat`` and ``nbf`` (if present, not in the future) check out; else
    :class:`Unauthenticated`."""
    try:
        claims: dict[str, object] = jwt.decode(
            token.strip(),
            secret,
            algorithms=[ALGORITHM],
            options={"require": ["exp", "sub"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthenticated("token expired") from exc
    except jwt.InvalidSignatureError as exc:
        raise Unauthenticated("token signature is invalid") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise Unauthenticated(f"token lacks the {exc.claim!r} claim") from exc
    except jwt.InvalidTokenError as exc:
        raise Unauthenticated(f"malformed token: {exc}") from exc
    return claims


class TokenCache:
    """:func:`authenticate` remembering the tokens it has verified: a token presented again is
    neither decoded nor its signature checked again until its ``exp``.

    Entries are keyed by the SHA-256 of the secret, the region bound and the token (never the
    token itself), least recently used first out, at most ``size``. Only a token that verified
    is kept, so a forged, malformed or expired one is always checked in full and refused; a
    kept one is dropped at its ``exp`` (checked against the clock on every use), when the secret
    changes (another key), and when its department is no longer known.
    """

    def __init__(self, size: int = 4096, clock: Callable[[], float] = time.time) -> None:
        self._cache: LRUCache[bytes, tuple[Principal, int]] = LRUCache(maxsize=size)
        self._clock = clock

    def __len__(self) -> int:
        return len(self._cache)

    def authenticate(
        self,
        authorization: str | None,
        secret: str,
        known_departments: Collection[str],
        max_regions: int = MAX_REGIONS,
    ) -> Principal:
        """As :func:`authenticate`."""
        token = bearer(authorization)
        key = hashlib.sha256(f"{max_regions}\0{secret}\0{token}".encode()).digest()
        found = self._cache.get(key)
        if found is not None:
            principal, expires = found
            if self._clock() < expires and principal.department in known_departments:
                return principal
            self._cache.pop(key, None)
        claims = verified(token, secret)
        principal = _principal(claims, known_departments, max_regions)
        exp = claims["exp"]
        if isinstance(exp, int) and self._clock() < exp:
            self._cache[key] = (principal, exp)
        return principal


def _principal(
    claims: dict[str, object], known_departments: Collection[str], max_regions: int
) -> Principal:
    department = claims.get("department")
    if not isinstance(department, str) or department not in known_departments:
        raise Unauthenticated(f"unknown department {_shown(department)}")
    org = claims.get("org")
    if not isinstance(org, str) or not org:
        raise Unauthenticated("token lacks the 'org' claim")
    for name, limit in CLAIM_LENGTHS.items():
        value = claims.get(name)
        if value is not None and not isinstance(value, str):
            raise Unauthenticated(f"{name} = {_shown(value)}: expected a string")
        if value is not None and (len(value) > limit or _CONTROL.search(value)):
            raise Unauthenticated(
                f"{name} = {_shown(value)}: expected at most {limit} characters, no controls"
            )
    regions = claims.get("regions")
    if not isinstance(regions, list) or not 1 <= len(regions) <= max_regions:
        count = len(regions) if isinstance(regions, list) else _shown(regions)
        raise Unauthenticated(f"regions: {count} prefixes, expected 1 to {max_regions}")
    for prefix in regions:
        if not isinstance(prefix, str) or not _REGION_PREFIX.match(prefix):
            raise Unauthenticated(f"regions: {_shown(prefix)} is not a prefix of 1-6 digits")
    purpose = claims.get("purpose")
    return Principal(
        subject=str(claims["sub"]),
        department=department,
        org=org,
        regions=tuple(regions),
        purpose=purpose if isinstance(purpose, str) else None,
    )


def _shown(value: object, limit: int = 40) -> str:
    """A claim's value for a message: its repr, cut short.

    >>> _shown("x" * 100)
    "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…"
    """
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
