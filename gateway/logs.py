"""Log lines: JSON (one object per line, python-json-logger) or plain text, by
``MEDGW_LOG_FORMAT``; and the one line each HTTP request leaves.

The request line carries the request id, the caller's department and organisation, the
operation's name and type, the HTTP status, the outcome code and the duration in ms, and never
a personal value: no variables, no query text, no ID number, no name (ACCESS.md: no personal
data in logs). The uvicorn access log keeps its own lines (query strings dropped by
:class:`gateway.app.WithoutQueryString`); in JSON they become JSON too.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal, TextIO

from pythonjsonlogger.json import JsonFormatter

from gateway.config import Settings

REQUESTS = logging.getLogger("medgw.requests")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
"""Probes and scrapes: their request lines are DEBUG, not INFO."""
REQUEST_FIELDS = (
    "request_id",
    "method",
    "path",
    "department",
    "org",
    "operation",
    "operation_type",
    "status",
    "code",
    "duration_ms",
)
"""The fields of a request line (JSON keys; ``extra`` attributes of the log record)."""


def formatter(kind: Literal["json", "text"]) -> logging.Formatter:
    """The formatter of ``MEDGW_LOG_FORMAT``: JSON with ``time``, ``level``, ``logger``,
    ``message`` and the record's ``extra`` fields (UTF-8, not ``\\uXXXX``), or plain text."""
    if kind == "text":
        return logging.Formatter(TEXT_FORMAT)
    return JsonFormatter(
        ["asctime", "levelname", "name", "message"],
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        json_ensure_ascii=False,
    )


class StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is when a record comes (test runners swap it)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def configure(settings: Settings) -> None:
    """Give the process's log lines the configured format: the root logger's plain stream
    handlers (``logging.basicConfig``'s) or, without one, a stderr handler of ours; in JSON,
    uvicorn's handlers too. ``medgw`` loggers log from INFO. Safe to call again."""
    chosen = formatter(settings.log_format)
    root = logging.getLogger()
    plain = [h for h in root.handlers if type(h) in (logging.StreamHandler, StderrHandler)]
    if not plain:
        plain = [StderrHandler()]
        root.addHandler(plain[0])
    if settings.log_format == "json":
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
            plain += logging.getLogger(name).handlers
    for handler in plain:
        handler.setFormatter(chosen)
    medgw = logging.getLogger("medgw")
    if medgw.getEffectiveLevel() > logging.INFO:
        medgw.setLevel(logging.INFO)


REQUEST_LINE = "%s %s %s %s %s/%s %s %s %.1f ms"
"""The request line's message: method, path, status, code, department/org, operation type and
name, duration."""


def log_request(**fields: Any) -> None:
    """The line of one answered request (INFO; DEBUG for probes and scrapes): a readable
    message, and ``fields`` (:data:`REQUEST_FIELDS`) as the record's attributes, JSON keys."""
    level = logging.DEBUG if fields["path"] in QUIET_PATHS else logging.INFO
    if not REQUESTS.isEnabledFor(level):
        return
    args = (
        *(fields[key] or "-" for key in ("method", "path", "status", "code", "department", "org")),
        fields["operation_type"],
        fields["operation"] or "-",
        fields["duration_ms"],
    )
    # What Logger.log does, but for the search of the stack for the caller, which is always
    # this function: inside a request that search cost more than the rest of the line (a
    # served A/B, 1,319 -> 1,364 point lookups/s).
    REQUESTS.handle(
        REQUESTS.makeRecord(
            REQUESTS.name, level, *_CALLER, REQUEST_LINE, args, None, "log_request", fields
        )
    )


_CALLER = (__file__, log_request.__code__.co_firstlineno)
"""Where every request line is logged from (the record's ``pathname`` and ``lineno``)."""
