"""The egress rules of webhooks (resolvers/egress.py): every address a host resolves to is
judged with ipaddress, whatever form it was written in; what the operator allows, and nothing
more, gets in."""

from __future__ import annotations

import ipaddress

import pytest

from gateway.config import Settings
from policies.errors import InvalidInput
from resolvers import egress
from tests.gateway.conftest import fake_dns

STRICT = egress.Rules()
ON_PREMISES = egress.Rules(allow_private=True)

INTERNAL = [
    ("127.0.0.1", "loopback"),
    ("127.8.9.10", "loopback"),
    ("::1", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "private"),  # shared address space (carrier-grade NAT)
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
    ("::ffff:10.0.0.1", "private"),
    ("2002:7f00:1::1", "loopback"),  # 6to4 of 127.0.0.1
    ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
]
NEVER = [
    ("169.254.169.254", "metadata"),
    ("169.254.1.1", "link-local"),
    ("100.100.100.200", "metadata"),  # Alibaba Cloud
    ("fd00:ec2::254", "metadata"),  # AWS over IPv6
    ("fe80::1", "link-local"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("240.0.0.1", "reserved"),
    ("::ffff:169.254.169.254", "metadata"),
]


@pytest.mark.parametrize(("address", "kind"), INTERNAL + NEVER)
def test_every_internal_address_is_refused_by_default(address: str, kind: str) -> None:
    why = STRICT.refusal(ipaddress.ip_address(address))
    assert why is not None
    assert kind in why


@pytest.mark.parametrize(("address", "kind"), NEVER)
def test_metadata_link_local_multicast_reserved_stay_refused_when_private_is_allowed(
    address: str, kind: str
) -> None:
    why = ON_PREMISES.refusal(ipaddress.ip_address(address))
    assert why is not None
    assert kind in why


@pytest.mark.parametrize(("address", "_"), INTERNAL)
def test_private_receivers_are_allowed_only_when_the_operator_says_so(address: str, _: str) -> None:
    assert ON_PREMISES.refusal(ipaddress.ip_address(address)) is None


def test_a_listed_network_is_allowed_and_its_neighbours_are_not() -> None:
    rules = egress.Rules.of(Settings(MEDGW_WEBHOOK_ALLOW_NETWORKS="10.20.0.0/16, fd12::/64"))
    assert rules.refusal(ipaddress.ip_address("10.20.3.4")) is None
    assert rules.refusal(ipaddress.ip_address("fd12::9")) is None
    assert rules.refusal(ipaddress.ip_address("10.21.0.1")) == "10.21.0.1 is private"
    assert not rules.public(ipaddress.ip_address("10.20.3.4"))  # so http is fine there


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    return fake_dns(monkeypatch)


@pytest.mark.parametrize("host", ["2130706433", "0177.0.0.1", "0x7f.1", "127.1", "localhost"])
async def test_loopback_written_any_way_is_refused_once_resolved(host: str) -> None:
    with pytest.raises(egress.Refused, match=r"127\.0\.0\.1 is loopback"):
        await egress.check(f"http://{host}:8080/hook", STRICT)


async def test_one_internal_address_among_public_ones_refuses_the_host(
    dns: dict[str, list[str]],
) -> None:
    dns["mixed.example"] = ["93.184.216.34", "10.0.0.5"]
    with pytest.raises(egress.Refused, match=r"mixed\.example: 10\.0\.0\.5 is private"):
        await egress.check("https://mixed.example/hook", STRICT)


async def test_a_public_receiver_must_be_https(dns: dict[str, list[str]]) -> None:
    dns["hooks.example"] = ["93.184.216.34"]
    with pytest.raises(egress.Refused, match="https is required"):
        await egress.check("http://hooks.example/hook", STRICT)
    parts, address = await egress.check("https://hooks.example/hook", STRICT)
    assert (parts.hostname, str(address)) == ("hooks.example", "93.184.216.34")


async def test_a_host_that_does_not_resolve_is_refused(dns: dict[str, list[str]]) -> None:
    with pytest.raises(InvalidInput) as refused:
        await egress.checked("https://nowhere.example/hook", STRICT)
    assert (refused.value.field, refused.value.value) == ("url", "https://nowhere.example/hook")
    assert "does not resolve" in refused.value.reason


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://hooks.example/x", "http or https"),
        ("file:///etc/passwd", "http or https"),
        ("gopher://127.0.0.1:6379/_INFO", "http or https"),
        ("https:///nohost", "http or https"),
        ("https://user:pw@hooks.example/x", "user name or password"),
        ("https://hooks.example@127.0.0.1/x", "user name or password"),
        ("https://hooks.example:99999/x", "port"),
        ("https://hooks.example/" + "a" * 2000, "longer than 2000"),
    ],
)
def test_a_malformed_url_is_refused_naming_the_field(url: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        egress.parse(url)
    assert refused.value.field == "url"
    assert reason in refused.value.reason


def test_the_connection_is_pinned_to_the_address_checked() -> None:
    target, headers, extensions = egress.pin(
        "http://receiver.test:8080/h?x=1", ipaddress.ip_address("10.0.0.7")
    )
    assert (str(target), headers, extensions) == (
        "http://10.0.0.7:8080/h?x=1",
        {"host": "receiver.test:8080"},
        {},
    )
