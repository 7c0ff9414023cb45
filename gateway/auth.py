"""Who is calling: bearer tokens (HS256 JWT) and the principal they carry.

A token's claims: ``sub`` (the user), ``department`` (one with an access policy), ``org`` (the
organisation, e.g. an insurer's code), ``regions`` (region-code prefixes it serves), optional
``purpose`` and ``exp``. Anything wrong with it is an :class:`Unauthenticated` error (HTTP 401).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

ALGORITHM = "HS256"
_REGION_PREFIX = re.compile(r"\A[0-9]{1,6}\Z")
_DURATION = re.compile(r"\A([0-9]+)([smhd])\Z")


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
) -> str:
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
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def authenticate(
    authorization: str | None, secret: str, known_departments: Collection[str]
) -> Principal:
    """The principal of an ``Authorization: Bearer <JWT>`` header, or :class:`Unauthenticated`."""
    if not authorization:
        raise Unauthenticated("missing Authorization header (expected 'Bearer <token>')")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("malformed Authorization header (expected 'Bearer <token>')")
    try:
        claims = jwt.decode(
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
    return _principal(claims, known_departments)


def _principal(claims: dict[str, object], known_departments: Collection[str]) -> Principal:
    department = claims.get("department")
    if not isinstance(department, str) or department not in known_departments:
        raise Unauthenticated(f"unknown department {department!r}")
    org = claims.get("org")
    if not isinstance(org, str) or not org:
        raise Unauthenticated("token lacks the 'org' claim")
    regions = claims.get("regions")
    if (
        not isinstance(regions, list)
        or not regions
        or not all(isinstance(r, str) and _REGION_PREFIX.match(r) for r in regions)
    ):
        raise Unauthenticated(f"regions = {regions!r}: expected a list of 1-6 digit prefixes")
    purpose = claims.get("purpose")
    if purpose is not None and not isinstance(purpose, str):
        raise Unauthenticated(f"purpose = {purpose!r}: expected a string")
    return Principal(
        subject=str(claims["sub"]),
        department=department,
        org=org,
        regions=tuple(regions),
        purpose=purpose,
    )
