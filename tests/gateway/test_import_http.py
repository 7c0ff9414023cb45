"""POST /imports/{kind} on a real server: a job at once (202), its status and its report."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from gateway.storage import models
from gateway.storage.database import Database
from tests.conftest import bearer
from tests.resolvers.test_imports import count, example

CIVIL_AFFAIRS = {"department": "civil_affairs", "org": "ca-5104", "regions": ("5104",)}


def as_csv(rows: list[list[str]], encoding: str = "utf_8") -> bytes:
    return "".join(",".join(row) + "\n" for row in rows).encode(encoding)


async def finished(http: httpx.AsyncClient, location: str, **token: Any) -> dict[str, Any]:
    for _ in range(600):
        response = await http.get(location, headers=bearer(**token))
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        if job["status"] != "RUNNING":
            return job
        await asyncio.sleep(0.05)
    raise AssertionError("the import did not finish")


async def test_an_import_returns_a_job_whose_report_names_the_bad_row(
    http: httpx.AsyncClient, db: Database
) -> None:
    rows = example("persons")
    rows[2][2] = "3708"  # not a 6-digit region code
    response = await http.post(
        "/imports/persons",
        params={"name": "低保名单.csv"},
        content=as_csv(rows, "gb18030"),
        headers=bearer(**CIVIL_AFFAIRS),
    )
    assert response.status_code == 202, response.text
    started = response.json()
    assert started["status"] == "RUNNING"
    assert response.headers["location"] == f"/imports/{started['id']}"
    job = await finished(http, response.headers["location"], **CIVIL_AFFAIRS)
    assert job["status"] == "REFUSED"
    assert job["fileName"] == "低保名单.csv"
    assert (job["summary"]["rows"], job["summary"]["refused"], job["summary"]["stored"]) == (
        4,
        1,
        0,
    )
    assert await count(db, models.Beneficiary) == 0
    report = await http.get(job["links"]["reportCsv"], headers=bearer(**CIVIL_AFFAIRS))
    assert report.status_code == 200
    assert report.content.decode("utf-8-sig").splitlines() == [
        "line,column,value,reason",
        "3,区划代码,3708,expected a 6-digit region code",
    ]
    body = json.loads(
        (await http.get(job["links"]["reportJson"], headers=bearer(**CIVIL_AFFAIRS))).content
    )
    assert body["problems"] == [
        {
            "line": 3,
            "column": "区划代码",
            "value": "3708",
            "reason": "expected a 6-digit region code",
        }
    ]
    assert body["summary"]["status"] == "REFUSED"
    # Another department does not see the job.
    other = await http.get(job["links"]["self"], headers=bearer(department="rural_revitalisation"))
    assert other.status_code == 404
    # Fixed, the same list is stored; with acceptValid the good rows would have been.
    response = await http.post(
        "/imports/persons", content=as_csv(example("persons")), headers=bearer(**CIVIL_AFFAIRS)
    )
    job = await finished(http, response.headers["location"], **CIVIL_AFFAIRS)
    assert (job["status"], job["summary"]["stored"]) == ("STORED", 4)
    assert await count(db, models.Beneficiary) == 4


async def test_an_import_the_department_may_not_run_is_refused_before_the_body_is_read(
    http: httpx.AsyncClient, db: Database
) -> None:
    response = await http.post(
        "/imports/enrollments", content=b"x", headers=bearer(**CIVIL_AFFAIRS)
    )
    assert response.status_code == 403
    assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    response = await http.post(
        "/imports/identities",
        params={"snapshot": "true", "category": "MINIMUM_LIVING", "asOf": "2026-13-01"},
        content=b"x",
        headers=bearer(**CIVIL_AFFAIRS),
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["field"] == "asOf"
    assert await count(db, models.ImportJob) == 0


async def test_a_file_over_the_upload_limit_is_refused_with_413(
    http_server: str, db: Database, monkeypatch: Any
) -> None:
    from gateway import imports

    monkeypatch.setattr(imports, "MAX_UPLOAD_BYTES", 100)
    async with httpx.AsyncClient(base_url=http_server, timeout=30) as http:
        response = await http.post(
            "/imports/persons",
            content=as_csv(example("persons")),
            headers=bearer(**CIVIL_AFFAIRS),
        )
    assert response.status_code == 413
    assert response.json()["errors"][0]["message"] == "body over 100 bytes"
    assert await count(db, models.ImportJob) == 0
