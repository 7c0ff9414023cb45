"""GraphiQL works with the network off (issue 10, point 4), in headless Chromium: every asset
comes from the gateway, the token is entered once on the page, the schema is fetched with it
(Docs lists the department's fields) and a query runs. A screenshot is written to
``var/test-artifacts/graphiql.png`` (not in git).

Chromium is Debian's (``make test`` installs it where it can, with apt-get as root); without
it the test is skipped and says so.
"""

from __future__ import annotations

import asyncio
import shutil
from urllib.parse import urlsplit

import pytest

from tests.browser import ARTIFACTS, CHROMIUM_ARGS
from tests.conftest import make_token


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("SKIPPED LOUDLY: no Chromium (make test installs Debian's chromium as root)")
    return path


def test_graphiql_works_offline_with_the_token_entered_once(http_server: str) -> None:
    executable = chromium()
    playwright = pytest.importorskip("playwright.sync_api")
    gateway = urlsplit(http_server).netloc
    elsewhere: list[str] = []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})

        def offline(route: object) -> None:
            request = route.request  # type: ignore[attr-defined]
            if urlsplit(request.url).netloc == gateway:
                route.continue_()  # type: ignore[attr-defined]
            else:  # the network is off: only the gateway answers
                elsewhere.append(request.url)
                route.abort()  # type: ignore[attr-defined]

        page.route("**/*", offline)
        page.goto(f"{http_server}/graphql")
        page.wait_for_selector(".graphiql-container", timeout=30_000)
        assert page.inner_text("#who") == "no token"

        page.fill("#token", make_token(department="finance", org="财政局"))
        page.click("#use-token")
        assert page.inner_text("#who").startswith("finance · 财政局")
        # The schema is fetched with the token: Docs lists the department's root fields.
        page.click("[aria-label='Show Documentation Explorer']")
        page.click('.graphiql-doc-explorer >> a >> text="Query"')
        page.wait_for_selector('.graphiql-doc-explorer >> text="statistics"', timeout=30_000)
        docs = page.inner_text(".graphiql-doc-explorer")
        assert "benefitPolicies" in docs
        assert "auditLog" not in docs  # finance's own schema, not the full one
        assert "Error fetching schema" not in page.inner_text("#graphiql")

        page.click(".graphiql-execute-button")
        page.wait_for_selector(".result-window >> text=510400-2023", timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "graphiql.png"))
        browser.close()
    assert elsewhere == []


def test_the_assets_are_the_gateway_s_own(http_server: str) -> None:
    import httpx

    async def fetch() -> list[int]:
        async with httpx.AsyncClient(base_url=http_server) as client:
            page = await client.get("/graphql", headers={"Accept": "text/html"})
            assert "https://" not in page.text
            assert "//unpkg" not in page.text
            names = ("graphiql.min.js", "graphiql.min.css", "react.production.min.js")
            return [(await client.get(f"/graphiql/static/{n}")).status_code for n in names]

    assert asyncio.run(fetch()) == [200, 200, 200]
