"""The dashboard page (issue 14, point 3) in headless Chromium, on a real uvicorn with the
product's k (5): it loads with no network beyond the gateway, shows the figures of a seeded
database as an independent computation gives them, shows a cell of under k persons as
suppressed, shows finance the fund balances of the ledgers (Dashboard.fundBalances) and a
department without them a note in their place, and shows a department without statistics its
refusal. A screenshot is written to
``var/test-artifacts/dashboard.png`` (not in git; the path is printed).

Chromium is Debian's (``make test`` installs it where it can, with apt-get as root); without it
the tests are skipped and say so loudly.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from gateway.app import create_app
from gateway.config import Settings
from gateway.storage.database import Database
from policies.labels import label
from tests.browser import ARTIFACTS, CHROMIUM_ARGS
from tests.conftest import GraphQLClient, make_token, serving
from tests.resolvers.test_balances import independent
from tests.resolvers.test_cube import PEOPLE, YEAR, Reference, reference, seed

K = Settings.model_fields["statistics_k"].default
SUPPRESSED = f"已抑制 (<{K})"


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip(
            "SKIPPED LOUDLY: no Chromium on PATH, the dashboard's browser tests did not run "
            "(make test installs Debian's chromium as root with apt-get)"
        )
    return path


@pytest.fixture(scope="module")
def server(settings: Settings, db: Database) -> Iterator[str]:
    """The gateway on a real uvicorn with the product's k (the session's app has k = 1)."""
    with serving(create_app(settings.model_copy(update={"statistics_k": K}))) as url:
        yield url


def money(value: Decimal) -> str:
    return f"{value:,.2f}"


def percent(part: Decimal, whole: Decimal) -> str:
    ratio = (part / whole).quantize(Decimal("0.0001"))
    return f"{ratio * 100:.2f}%"


class Browser:
    """A Chromium page that lets only the gateway answer and records every other request."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.elsewhere: list[str] = []

    async def __aenter__(self) -> Any:
        playwright = pytest.importorskip("playwright.async_api")
        executable = chromium()
        self.manager = playwright.async_playwright()
        p = await self.manager.__aenter__()
        self.browser = await p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = await self.browser.new_page(viewport={"width": 1400, "height": 1000})
        gateway = urlsplit(self.server).netloc

        async def offline(route: Any) -> None:
            if urlsplit(route.request.url).netloc == gateway:
                await route.continue_()
            else:  # the network is off: only the gateway answers
                self.elsewhere.append(route.request.url)
                await route.abort()

        await page.route("**/*", offline)
        return page

    async def __aexit__(self, *exc: object) -> None:
        await self.browser.close()
        await self.manager.__aexit__(*exc)


async def open_with(page: Any, server: str, token: str) -> None:
    await page.goto(f"{server}/dashboard?year={YEAR}")
    await page.fill("#token", token)
    await page.click("#use-token")
    await page.wait_for_selector("body[data-state=ready]", timeout=30_000)


async def cell(page: Any, table: str, key: str, field: str) -> str:
    text: str = await page.inner_text(f"#{table} tr[data-key='{key}'] td[data-field='{field}']")
    return text.strip()


async def test_the_page_shows_the_seeded_figures_and_suppresses_small_cells(
    server: str, gql: GraphQLClient, db: Database
) -> None:
    chromium()
    await seed(gql)
    ref: Reference = await reference(db, "5104")  # the token's region: the page's default
    total = ref.total("year", "-").money
    token = make_token(department="dashboard", org="市医保局看板", regions=("5104",))
    browser = Browser(server)
    async with browser as page:
        await open_with(page, server, token)
        assert await page.is_hidden("#error")
        assert (await page.inner_text("#who")).startswith("dashboard · 市医保局看板")
        kpi = {
            name: (await page.inner_text(f"#kpi-{name} .value")).strip()
            for name in ("persons", "claims", "total-cost", "out-of-pocket-share", "assisted")
        }
        assert kpi == {
            "persons": str(ref.persons("year", "-")),
            "claims": str(ref.total("year", "-").claims),
            "total-cost": money(total["total_cost"]),
            "out-of-pocket-share": percent(total["out_of_pocket"], total["total_cost"]),
            "assisted": str(ref.persons("assisted", "-")),
        }
        assert kpi["persons"] == str(len(PEOPLE))
        # By category, with the Chinese names; the two persons of 特困人员 are suppressed.
        living = ref.total("category", "MINIMUM_LIVING").money
        assert await cell(page, "by-category", "MINIMUM_LIVING", "label") == "低保对象"
        assert await cell(page, "by-category", "MINIMUM_LIVING", "persons") == str(
            ref.persons("category", "MINIMUM_LIVING")
        )
        assert await cell(page, "by-category", "MINIMUM_LIVING", "totalCost") == money(
            living["total_cost"]
        )
        assert await cell(page, "by-category", "MINIMUM_LIVING", "assistance") == money(
            living["assistance"]
        )
        assert await cell(page, "by-category", "MINIMUM_LIVING", "outOfScopeShare") == percent(
            living["out_of_scope"], living["total_cost"]
        )
        assert ref.persons("category", "EXTREME_POVERTY") == 2
        assert await cell(page, "by-category", "EXTREME_POVERTY", "label") == "特困人员"
        for field in ("persons", "totalCost", "outOfPocketShare"):
            assert await cell(page, "by-category", "EXTREME_POVERTY", field) == SUPPRESSED
        # By region one level below the token's prefix: 510411 (two persons) is suppressed, and
        # so is the next smallest, 510403, lest 510411 be 5104 minus the regions shown.
        assert await cell(page, "by-region", "510402", "outOfPocket") == money(
            ref.total("region", "510402").money["out_of_pocket"]
        )
        assert ref.persons("region", "510403") == len(PEOPLE) - 2 - 7
        for region in ("510403", "510411"):
            assert await cell(page, "by-region", region, "outOfPocket") == SUPPRESSED
        # The payers' shares of the total cost.
        basic = ref.total("payer", "basicInsurance").money["basicInsurance"]
        assert await cell(page, "by-payer", "basicInsurance", "amount") == money(basic)
        assert await cell(page, "by-payer", "basicInsurance", "share") == percent(
            basic, total["total_cost"]
        )
        # The charts were drawn (ECharts canvases), from the gateway's own copy.
        assert await page.locator("#chart-month canvas").count() == 1
        # The dashboard department is not granted the fund balances: the section stays hidden,
        # a note says why, and the rest of the page is there.
        assert await page.is_hidden("#fund-balances")
        refused = await page.inner_text("#fund-balances-refused")
        assert "本部门无权查看" in refused
        assert "Dashboard.fundBalances" in refused
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "dashboard.png"
        await page.screenshot(path=str(shot), full_page=True)
        print(f"dashboard screenshot: {shot}")
        # The token stays in this tab's sessionStorage, nowhere else.
        stored = await page.evaluate("[sessionStorage.getItem('medgw.token'), localStorage.length]")
        assert stored == [token, 0]
    assert browser.elsewhere == []


async def test_finance_sees_the_fund_balances_of_the_ledgers(
    server: str, gql: GraphQLClient, db: Database
) -> None:
    chromium()
    await seed(gql)
    expected = await independent(db, "5104", YEAR)
    token = make_token(department="finance", org="攀枝花市财政局", regions=("5104",))
    browser = Browser(server)
    async with browser as page:
        await open_with(page, server, token)
        assert await page.is_hidden("#error")
        await page.wait_for_selector("#fund-balances:not([hidden])", timeout=30_000)
        assert await page.is_hidden("#fund-balances-refused")
        for fund, sums in expected.items():
            assert await cell(page, "funds", fund, "label") == label("account", fund)
            for field in ("opening", "debits", "credits", "closing", "settlements", "subsidies"):
                assert await cell(page, "funds", fund, field) == money(getattr(sums, field)), (
                    fund,
                    field,
                )
        assistance = expected["ASSISTANCE_FUND"]
        assert assistance.settlements > 0
        assert assistance.subsidies > 0
        assert await page.locator("#chart-fund-use canvas").count() == 1
        # The rest of the page as for the dashboard department (finance reads aggregates).
        assert (await page.inner_text("#kpi-persons .value")).strip() == str(len(PEOPLE))
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "dashboard-funds.png"
        await page.screenshot(path=str(shot), full_page=True)
        print(f"dashboard screenshot with fund balances: {shot}")
    assert browser.elsewhere == []


async def test_a_department_without_statistics_sees_the_refusal(
    server: str, gql: GraphQLClient
) -> None:
    chromium()
    await seed(gql)
    token = make_token(department="insurer", org="insurer-a", purpose="claim_handling")
    browser = Browser(server)
    async with browser as page:
        await open_with(page, server, token)
        assert await page.is_hidden("#board")
        refusal = await page.inner_text("#error")
        assert "本部门无权查看统计数据" in refusal
        assert "FORBIDDEN" in refusal
        assert "dashboard" in refusal
        await page.screenshot(path=str(ARTIFACTS / "dashboard-refused.png"))
    assert browser.elsewhere == []


async def test_the_page_and_its_assets_are_the_gateway_s_own(http: Any) -> None:
    """Without a browser too: the page, its script and ECharts come from the gateway, the
    Content-Security-Policy allows no other origin."""
    page = await http.get("/dashboard")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "connect-src 'self'" in policy
    assert "script-src 'self'" in policy
    assert page.headers["cache-control"] == "no-store"
    for name in ("echarts.min.js", "dashboard.js", "dashboard.css", "LICENSE"):
        asset = await http.get(f"/dashboard/static/{name}")
        assert asset.status_code == 200, name
        if name == "dashboard.js":
            assert "https://" not in asset.text
            assert "localStorage" not in asset.text  # the token: sessionStorage only
    assert "https://" not in page.text
    assert (await http.get("/dashboard/static/missing.js")).status_code == 404


def test_the_wheel_carries_the_page_and_echarts() -> None:
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '"static/dashboard/*"' in pyproject
