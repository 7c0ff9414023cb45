"""Optional OpenTelemetry traces (``pip install medgw[otel]`` and ``MEDGW_OTEL=true``):
strawberry's ``OpenTelemetryExtension`` gives each GraphQL operation a span, with parsing,
validation and every resolver below it.

Without personal values: the ``query`` attribute is the query's SHA-256 (as in the audit log),
never its text; resolver arguments are not recorded; the span is named after the operation of
the document (:func:`gateway.outcomes.operation_of`), never a name the client made up. Spans go
to the process's tracer provider: run under ``opentelemetry-instrument`` (``OTEL_*``
variables) or configure one; without one they cost next to nothing and go nowhere.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import Any

from strawberry.extensions import SchemaExtension

from gateway.config import Settings
from gateway.outcomes import operation_of
from gateway.storage.audit import query_hash

log = logging.getLogger("medgw.tracing")


def tracing(settings: Settings) -> list[type[SchemaExtension]]:
    """The tracing extension when ``MEDGW_OTEL`` is true and OpenTelemetry is installed (a
    warning names the extra when it is not), else none.

    >>> tracing(Settings())
    []
    """
    if not settings.otel:
        return []
    try:
        from opentelemetry.trace import Span
        from strawberry.extensions import LifecycleStep
        from strawberry.extensions.tracing import OpenTelemetryExtension
    except ImportError:
        log.warning("MEDGW_OTEL=true but OpenTelemetry is not installed: pip install medgw[otel]")
        return []

    class Traces(OpenTelemetryExtension):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(arg_filter=lambda args, info: {}, **kwargs)

        def on_operation(self) -> Generator[None, None, None]:
            steps = super().on_operation()
            next(steps)
            span: Span = self._span_holder[LifecycleStep.OPERATION]
            span.set_attribute("query", query_hash(self.execution_context.query) or "")
            span.update_name("GraphQL Query")
            yield
            definition = operation_of(self.execution_context)
            if definition is not None and definition.name is not None:
                span.update_name(f"GraphQL {definition.operation.value}: {definition.name.value}")
            self._operation_name = "named"  # so that the base class keeps the span's name
            next(steps, None)

    return [Traces]
