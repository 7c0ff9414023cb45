"""The request line (gateway/logs.py): made without a search of the stack for its caller,
it is the record ``Logger.log`` would make, and names where it is logged from."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import logs

FIELDS = {
    "request_id": "0" * 32,
    "method": "POST",
    "path": "/graphql",
    "department": "medical_insurance",
    "org": "mi-5104",
    "operation": "Person",
    "operation_type": "query",
    "status": 200,
    "code": "OK",
    "duration_ms": 1.25,
}


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def kept() -> Iterator[Kept]:
    handler, before = Kept(), logs.REQUESTS.level
    logs.REQUESTS.addHandler(handler)
    logs.REQUESTS.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logs.REQUESTS.removeHandler(handler)
        logs.REQUESTS.setLevel(before)


def test_the_request_line_is_the_record_logger_log_makes(kept: Kept) -> None:
    logs.log_request(**FIELDS)
    args = ("POST", "/graphql", 200, "OK", "medical_insurance", "mi-5104", "query", "Person")
    logs.REQUESTS.info(logs.REQUEST_LINE, *args, 1.25, extra=FIELDS)
    ours, theirs = kept.records
    assert ours.getMessage() == "POST /graphql 200 OK medical_insurance/mi-5104 query Person 1.2 ms"
    assert ours.getMessage() == theirs.getMessage()
    where = ("pathname", "filename", "module", "lineno", "funcName", "created", "msecs")
    times = ("relativeCreated", "asctime")
    assert {k: v for k, v in vars(ours).items() if k not in where + times} == {
        k: v for k, v in vars(theirs).items() if k not in where + times
    }
    # Where it is logged from: the function that logs it (Logger.log would have named this
    # test, which called the logger itself).
    assert Path(ours.pathname) == Path(logs.__file__)
    assert (ours.funcName, ours.module) == ("log_request", "logs")
    assert ours.lineno == logs.log_request.__code__.co_firstlineno
    assert theirs.funcName == "test_the_request_line_is_the_record_logger_log_makes"
    for key, value in FIELDS.items():
        assert getattr(ours, key) == value


def test_probes_log_at_debug_and_a_level_off_writes_nothing(kept: Kept) -> None:
    before = logs.REQUESTS.level
    logs.REQUESTS.setLevel(logging.INFO)
    try:
        logs.log_request(**(FIELDS | {"path": "/healthz"}))
        assert kept.records == []
        logs.log_request(**(FIELDS | {"code": None, "operation": None}))
        [line] = kept.records
        assert line.levelno == logging.INFO
        assert line.getMessage() == ("POST /graphql 200 - medical_insurance/mi-5104 query - 1.2 ms")
        logs.REQUESTS.setLevel(logging.DEBUG)
        logs.log_request(**(FIELDS | {"path": "/healthz"}))
        assert kept.records[-1].levelno == logging.DEBUG
    finally:
        logs.REQUESTS.setLevel(before)
