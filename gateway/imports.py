"""List imports over HTTP (:mod:`resolvers.imports`), behind the bearer-token authentication.

- ``POST /imports/{kind}`` (``persons``, ``identities``, ``flags``, ``enrollments``): the body
  is the file itself (CSV or XLSX, e.g. ``curl --data-binary @list.csv``), streamed to a
  temporary file. Query parameters: ``snapshot=true``, ``category`` and ``asOf`` (a snapshot),
  ``acceptValid=true``, ``name`` (the file's name, for the record). The request is checked
  (kind, owner rules, purpose) before the body is read; the import then runs in the background
  and the answer comes at once: ``202 {"id", "status": "RUNNING", "links"}`` with a
  ``Location`` header. A large file never holds a request open.
- ``GET /imports/{id}``: the job: ``status`` (RUNNING, STORED, REFUSED, FAILED), kind, mode,
  the file's SHA-256 and the ``summary`` (counts of rows: stored, changed, unchanged, ended,
  refused, problems, adjustments, recoveries).
- ``GET /imports/{id}/report.csv`` or ``.json``: the problems ``(line, column, value, reason)``
  in file order, streamed (CSV in UTF-8 with BOM; JSON ``{"summary", "problems": [...]}``).

A job is visible to the department and organisation that ran it (else 404). Errors have the
gateway's one JSON shape: 400 ``BAD_INPUT`` naming the parameter and value, 403 ``FORBIDDEN``,
404 ``NOT_FOUND``, 401 without a valid token.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import logging
import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any, Protocol

from starlette.authentication import AuthenticationBackend
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gateway.auth import Principal
from gateway.config import Settings
from gateway.errors import BAD_INPUT, FORBIDDEN, NOT_FOUND, Forbidden, NotFound
from gateway.middleware import json_error, unauthenticated
from gateway.storage import models
from gateway.storage.database import Database
from policies.access.policy import AccessPolicies
from policies.benefits import PolicySet
from policies.errors import InvalidInput
from resolvers.imports import Importer, ImportRequest, create_job, job_of, plan, report_rows

log = logging.getLogger(__name__)
PARAMETERS = ("snapshot", "category", "asOf", "acceptValid", "name")
REPORT_COLUMNS = ("line", "column", "value", "reason")
MAX_UPLOAD_BYTES = 4 << 30
"""The largest file an import takes over HTTP (4 GiB; about 40 million rows of identities)."""
_RUNNING: set[asyncio.Task[None]] = set()
"""Imports running in this process (kept so that they are not garbage-collected)."""


class Serving(Protocol):
    settings: Settings
    db: Database
    policies: PolicySet
    access: AccessPolicies


def _flag(request: Request, name: str) -> bool:
    text = request.query_params.get(name, "false")
    if text not in ("true", "false"):
        raise InvalidInput(name, text, "expected true or false")
    return text == "true"


def import_request(request: Request) -> ImportRequest:
    """The import a POST asks for. :raises InvalidInput: naming the parameter and value."""
    params = request.query_params
    for name in params:
        if name not in PARAMETERS:
            raise InvalidInput(name, params[name], f"unknown parameter ({', '.join(PARAMETERS)})")
    as_of = params.get("asOf")
    try:
        day = date.fromisoformat(as_of) if as_of else None
    except ValueError:
        raise InvalidInput("asOf", as_of, "expected a date such as 2026-11-30") from None
    return ImportRequest(
        kind=request.path_params["kind"],
        snapshot=_flag(request, "snapshot"),
        category=params.get("category") or None,
        as_of=day,
        accept_valid=_flag(request, "acceptValid"),
    )


def job_document(job: models.ImportJob) -> dict[str, Any]:
    return {
        "id": str(job.id),
        "kind": job.kind,
        "mode": job.mode,
        "category": job.category,
        "asOf": job.as_of.isoformat() if job.as_of else None,
        "acceptValid": job.accept_valid,
        "fileName": job.file_name,
        "fileSha256": job.file_sha256,
        "status": job.status,
        "createdAt": job.created_at.isoformat(),
        "finishedAt": job.finished_at.isoformat() if job.finished_at else None,
        "summary": job.summary,
        "links": links(job.id),
    }


def links(job_id: uuid.UUID) -> dict[str, str]:
    return {
        "self": f"/imports/{job_id}",
        "reportCsv": f"/imports/{job_id}/report.csv",
        "reportJson": f"/imports/{job_id}/report.json",
    }


async def report_csv(rows: AsyncIterator[tuple[int, str, str, str]]) -> AsyncIterator[bytes]:
    """The report as CSV in UTF-8 with a BOM (Excel opens it as is)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(REPORT_COLUMNS)
    yield "\ufeff".encode() + _drain(buffer)
    count = 0
    async for row in rows:
        writer.writerow(row)
        count += 1
        if count % 1000 == 0:
            yield _drain(buffer)
    yield _drain(buffer)


async def report_json(
    summary: dict[str, Any], rows: AsyncIterator[tuple[int, str, str, str]]
) -> AsyncIterator[bytes]:
    """The report as JSON: ``{"summary": {...}, "problems": [{line, column, value, reason}]}``."""
    yield b'{"summary": ' + json.dumps(summary, ensure_ascii=False).encode() + b', "problems": ['
    first = True
    async for row in rows:
        item = json.dumps(dict(zip(REPORT_COLUMNS, row, strict=True)), ensure_ascii=False)
        yield (item if first else ", " + item).encode()
        first = False
    yield b"]}\n"


def _drain(buffer: io.StringIO) -> bytes:
    data = buffer.getvalue().encode()
    buffer.seek(0)
    buffer.truncate()
    return data


class Imports:
    """The ASGI endpoint of ``/imports/...`` (POST a file, GET a job or its report)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            if request.method == "POST":
                response = await self.start(request)
            elif "format" in request.path_params:
                response = await self.report(request)
            else:
                response = await self.status(request)
        except InvalidInput as exc:
            value = exc.value if isinstance(exc.value, str | int) else str(exc.value)
            response = json_error(400, BAD_INPUT, str(exc), scope, field=exc.field, value=value)
        except Forbidden as exc:
            details = {k: v for k, v in exc.extensions.items() if k != "code"}
            response = json_error(403, FORBIDDEN, str(exc), scope, **details)
        except NotFound as exc:
            response = json_error(404, NOT_FOUND, str(exc), scope, field="id")
        except TooLarge as exc:
            response = json_error(413, BAD_INPUT, str(exc), scope)
        await response(scope, receive, send)

    async def start(self, request: Request) -> Response:
        gateway: Serving = request.app.state.gateway
        principal: Principal = request.user.principal
        today = gateway.settings.today()
        planned = plan(import_request(request), principal, gateway.access, today)
        path, sha256 = await _receive(request)
        name = request.query_params.get("name") or f"{planned.kind}-upload"
        try:
            job_id = await create_job(gateway.db, principal, planned, name, sha256)
        except BaseException:
            await asyncio.to_thread(path.unlink, missing_ok=True)
            raise
        importer = Importer(gateway.db, principal, gateway.policies, gateway.access, planned, today)

        async def work() -> None:
            try:
                await importer.run(job_id, path, sha256)
            except Exception:
                log.exception("import %s failed", job_id)
            finally:
                await asyncio.to_thread(path.unlink, missing_ok=True)

        task = asyncio.create_task(work())
        _RUNNING.add(task)
        task.add_done_callback(_RUNNING.discard)
        return JSONResponse(
            {"id": str(job_id), "status": "RUNNING", "links": links(job_id)},
            status_code=202,
            headers={"Location": f"/imports/{job_id}"},
        )

    async def status(self, request: Request) -> Response:
        gateway: Serving = request.app.state.gateway
        job = await job_of(gateway.db, request.user.principal, _job_id(request))
        return JSONResponse(job_document(job))

    async def report(self, request: Request) -> Response:
        gateway: Serving = request.app.state.gateway
        shape = request.path_params["format"]
        if shape not in ("csv", "json"):
            raise InvalidInput("format", shape, "expected csv or json")
        principal = request.user.principal
        job = await job_of(gateway.db, principal, _job_id(request))
        rows = report_rows(gateway.db, principal, job.id)
        if shape == "csv":
            return StreamingResponse(
                report_csv(rows),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="{job.id}.csv"'},
            )
        return StreamingResponse(
            report_json(job.summary | {"status": job.status}, rows),
            media_type="application/json",
        )


def import_routes(tokens: AuthenticationBackend) -> list[Route]:
    """The routes of ``/imports``, each behind the bearer-token authentication."""
    endpoint = AuthenticationMiddleware(Imports(), backend=tokens, on_error=unauthenticated)
    return [
        Route("/imports/{id}/report.{format}", endpoint, methods=["GET"]),
        Route("/imports/{kind}", endpoint, methods=["POST"]),
        Route("/imports/{id}", endpoint, methods=["GET"]),
    ]


def _job_id(request: Request) -> uuid.UUID:
    text = request.path_params["id"]
    try:
        return uuid.UUID(text)
    except ValueError:
        raise NotFound(f"id = {text}: no such import", field="id") from None


class TooLarge(Exception):
    """A body over :data:`MAX_UPLOAD_BYTES` (HTTP 413)."""


async def _receive(request: Request) -> tuple[Path, str]:
    """The request body, streamed to a temporary file; its path and SHA-256.

    :raises TooLarge: past :data:`MAX_UPLOAD_BYTES` (the partial file is removed).
    """
    digest = hashlib.sha256()
    handle, name = tempfile.mkstemp(prefix="medgw-import-")
    path = Path(name)
    size = 0
    try:
        with os.fdopen(handle, "wb") as file:
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_UPLOAD_BYTES:
                    raise TooLarge(f"body over {MAX_UPLOAD_BYTES} bytes")
                digest.update(chunk)
                await asyncio.to_thread(file.write, chunk)
    except BaseException:
        await asyncio.to_thread(path.unlink, missing_ok=True)
        raise
    return path, digest.hexdigest()
