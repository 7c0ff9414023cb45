"""Where webhook deliveries may go: the guard against server-side request forgery (SSRF).

A department registers a URL and the gateway POSTs to it, so without a guard a token could make
the gateway reach what only it can reach: its own loopback services, the database, the
on-premises network, a cloud's metadata service (``169.254.169.254``, Alibaba Cloud's
``100.100.100.200``). The guard, at registration *and* at every delivery:

1. **The URL**: ``http`` or ``https``, a host, no user name or password in it (``user:pw@``
   hides the real host from a reader), at most :data:`MAX_URL` characters.
2. **The addresses**: the host is resolved and *every* address it resolves to is judged with
   :mod:`ipaddress` (never by the text: ``2130706433``, ``0177.0.0.1``, ``0x7f.1`` and
   ``::ffff:127.0.0.1`` are all loopback once resolved). Refused: loopback, private (RFC 1918,
   ``fc00::/7``, shared ``100.64.0.0/10``), link-local (``169.254.0.0/16``, ``fe80::/10``: the
   metadata services), multicast, reserved, unspecified, and IPv6 addresses that carry such an
   IPv4 address (IPv4-mapped, 6to4, Teredo, NAT64 ``64:ff9b::/96``).
3. **https outside the allow-list**: a public receiver gets personal data over the Internet, so
   it must be ``https``; plain ``http`` only reaches addresses the operator allowed.
4. **The connection goes to the address checked** (:func:`pin`): the request is sent to that IP
   with the original ``Host`` header and TLS server name, so a DNS answer that changes between
   the check and the connection (DNS rebinding) cannot move it. Redirects are not followed.

The operator's allow-list (:class:`Rules`, from the settings): ``MEDGW_WEBHOOK_ALLOW_PRIVATE``
lets loopback and private receivers in (on-premises deployments, tests), never link-local,
multicast, reserved, unspecified or a metadata address; ``MEDGW_WEBHOOK_ALLOW_NETWORKS`` lets
exactly the networks listed in, whatever they are.

>>> rules = Rules()
>>> rules.refusal(ipaddress.ip_address("::ffff:10.0.0.1"))
'10.0.0.1 is private'
>>> rules.refusal(ipaddress.ip_address("8.8.8.8")) is None
True
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

import httpx

from gateway.config import Settings
from policies.errors import InvalidInput

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_URL = 2000
RESOLVE_TIMEOUT_S = 5
NAT64 = ipaddress.ip_network("64:ff9b::/96")
METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "100.100.100.200", "fd00:ec2::254", "169.254.170.2")
)
"""Cloud metadata services (AWS/GCP/Azure/OpenStack, Alibaba Cloud, AWS IPv6, ECS tasks):
refused even when private receivers are allowed."""


class Refused(Exception):
    """A destination the rules refuse (the message says which address and why)."""


@dataclass(frozen=True)
class Rules:
    """What the operator allows beyond public https receivers."""

    allow_private: bool = False
    allow_networks: tuple[Network, ...] = ()

    @classmethod
    def of(cls, settings: Settings) -> Rules:
        return cls(settings.webhook_allow_private, settings.webhook_allow_networks)

    def listed(self, ip: IP) -> bool:
        return any(ip.version == n.version and ip in n for n in self.allow_networks)

    def refusal(self, ip: IP) -> str | None:
        """Why ``ip`` may not receive deliveries, None when it may."""
        if self.listed(ip):
            return None
        if isinstance(ip, ipaddress.IPv6Address):
            embedded = _embedded(ip)
            if embedded is not None:
                return self.refusal(embedded)
        if ip in METADATA:
            return f"{ip} is a cloud metadata service"
        for kind in ("unspecified", "multicast", "link_local"):
            if getattr(ip, f"is_{kind}"):
                return f"{ip} is {kind.replace('_', '-')}"
        if ip.is_loopback:  # before reserved: ::1 lies in the reserved ::/8
            return None if self.allow_private else f"{ip} is loopback"
        if ip.is_reserved:
            return f"{ip} is reserved"
        if not ip.is_global:
            return None if self.allow_private else f"{ip} is private"
        return None

    def public(self, ip: IP) -> bool:
        """Outside the allow-list: a receiver that must be https."""
        plain = _embedded(ip) if isinstance(ip, ipaddress.IPv6Address) else None
        checked = plain or ip
        return not self.listed(ip) and checked.is_global


def _embedded(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, Teredo client, NAT64), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def parse(url: str, field: str = "url") -> SplitResult:
    """The parts of a syntactically acceptable URL; BAD_INPUT naming ``field`` otherwise.

    >>> parse("https://h.example/x").hostname
    'h.example'
    """
    text = url.strip()
    if len(text) > MAX_URL:
        raise InvalidInput(field, url[:80] + "…", f"longer than {MAX_URL} characters")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(field, url, "expected an http or https URL with a host")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise InvalidInput(field, url, "a user name or password in the URL is not accepted")
    try:
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        raise InvalidInput(field, url, "not a valid port") from None
    return parts


Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


async def system_resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to (IP literals in any form resolve to themselves)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


resolve: Resolver = system_resolve
"""The resolver the guard uses (tests put a fake DNS here)."""


async def check(url: str, rules: Rules, field: str = "url") -> tuple[SplitResult, IP]:
    """The URL's parts and the address to connect to, once every address the host resolves to
    passed ``rules`` (and a public one is https). :class:`Refused` names the address and why;
    BAD_INPUT for a malformed URL."""
    parts = parse(url, field)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_S):
            found = await resolve(host, port)
        addresses = [ipaddress.ip_address(a.split("%")[0]) for a in found]
    except TimeoutError:
        raise Refused(f"{host} does not resolve within {RESOLVE_TIMEOUT_S} s") from None
    except (OSError, UnicodeError, ValueError) as exc:
        raise Refused(f"{host} does not resolve ({exc})") from None
    if not addresses:
        raise Refused(f"{host} does not resolve")
    for ip in addresses:
        why = rules.refusal(ip)
        if why is not None:
            raise Refused(f"{host}: {why}")
        if parts.scheme != "https" and rules.public(ip):
            raise Refused(f"{host}: {ip} is public, so https is required")
    return parts, addresses[0]


async def checked(url: str, rules: Rules, field: str = "url") -> str:
    """``url`` stripped if the rules accept it now; BAD_INPUT naming ``field`` and the URL."""
    try:
        await check(url, rules, field)
    except Refused as exc:
        raise InvalidInput(field, url, f"not a permitted receiver: {exc}") from None
    return url.strip()


def pin(url: str, ip: IP) -> tuple[httpx.URL, dict[str, str], dict[str, str]]:
    """The request to send to ``ip`` in place of ``url``'s host: the URL with the address, the
    ``Host`` header, and the TLS server name (certificates are checked against the host name).

    >>> target, headers, extensions = pin("https://a.example:8443/h", ipaddress.ip_address("::1"))
    >>> str(target), headers, extensions
    ('https://[::1]:8443/h', {'host': 'a.example:8443'}, {'sni_hostname': 'a.example'})
    """
    original = httpx.URL(url.strip())
    target = original.copy_with(host=str(ip))
    headers = {"host": original.netloc.decode("ascii")}
    extensions = {"sni_hostname": original.host} if original.scheme == "https" else {}
    return target, headers, extensions
