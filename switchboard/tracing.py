"""OpenTelemetry traces, off unless an OTLP endpoint is configured.

One :class:`Tracing` per process, made by the composition root from :class:`TracingSettings` and
passed down (never a global provider: two apps in one test process keep their own). Off, it holds
no provider and :meth:`Tracing.span` yields ``None`` without creating anything: the cost of a span
point is one attribute read and a shared null context.

The join path is one trace across processes: the API's token reply carries the W3C ``traceparent``
of its request span, the client hands it back in ``show.join`` (an optional field), and the node's
``show.join`` span (and the member's later ``show.subscribe`` / ``show.answer`` spans) are its children.
Postgres statements are spans through an engine listener (:meth:`Tracing.instrument_engine`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from switchboard.errors import SettingsError

__all__ = ["Tracing", "TracingSettings", "traceparent_of"]

_NULL: contextlib.nullcontext[None] = contextlib.nullcontext()
_SPAN_KEY = "_switchboard_span"
"""Where the SQL listener keeps a statement's span: an attribute of SQLAlchemy's execution context."""


@dataclass(frozen=True)
class TracingSettings:
    """Traces over OTLP/HTTP (``SWITCHBOARD_TRACING_OTLP_ENDPOINT``). Empty endpoint: off, no spans."""

    otlp_endpoint: str = ""
    """The collector's traces URL, e.g. ``http://127.0.0.1:4318/v1/traces``; empty: tracing off."""
    service_name: str = "switchboard"
    """``service.name`` of this process's spans (the CLI appends the process: ``switchboard-api``)."""

    def __post_init__(self) -> None:
        if self.otlp_endpoint and not self.otlp_endpoint.startswith(("http://", "https://")):
            raise SettingsError("otlp_endpoint", f"must be an http(s) URL, got {self.otlp_endpoint!r}")


class Tracing:
    """A process's tracer, or nothing (off)."""

    def __init__(self, provider: TracerProvider | None = None) -> None:
        self._provider = provider
        self._tracer = provider.get_tracer("switchboard") if provider is not None else None
        self._propagator = TraceContextTextMapPropagator()

    @classmethod
    def from_settings(cls, settings: TracingSettings, process: str) -> Tracing:
        """Off when no endpoint is set; else spans batched to the OTLP/HTTP exporter."""
        if not settings.otlp_endpoint:
            return cls()
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider = _provider(f"{settings.service_name}-{process}")
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otlp_endpoint)))
        return cls(provider)

    @classmethod
    def to_exporter(cls, exporter: SpanExporter, service_name: str = "switchboard") -> Tracing:
        """Every span handed to ``exporter`` as it ends (tests: the SDK's InMemorySpanExporter)."""
        provider = _provider(service_name)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        return cls(provider)

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    def span(self, name: str, *, parent: str | None = None, kind: SpanKind = SpanKind.INTERNAL,
             attributes: Mapping[str, str | int | bool] | None = None
             ) -> contextlib.AbstractContextManager[Span | None]:
        """A span made current for the block, child of ``parent`` (a W3C traceparent) when given, else
        of the current span. Off: a null context yielding ``None``. A malformed traceparent starts a new trace."""
        if self._tracer is None:
            return _NULL
        ctx = self._propagator.extract({"traceparent": parent}) if parent else None
        return self._tracer.start_as_current_span(name, context=ctx, kind=kind, attributes=attributes)

    def record(self, name: str, *, parent: str | None, start_ns: int,
               attributes: Mapping[str, str | int | bool] | None = None) -> None:
        """A span that began at ``start_ns`` (``time.time_ns()``) and ends now, child of ``parent``. Off: nothing."""
        if self._tracer is None:
            return
        ctx = self._propagator.extract({"traceparent": parent}) if parent else None
        self._tracer.start_span(name, context=ctx, start_time=start_ns, attributes=attributes).end()

    def traceparent(self) -> str | None:
        """The current span as a W3C traceparent (to hand to another process), or None (off, no span)."""
        if self._tracer is None:
            return None
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier)
        return carrier.get("traceparent")

    def middleware(self) -> Callable[..., Awaitable[web.StreamResponse]] | None:
        """An aiohttp middleware making one server span per request (``METHOD /route/{template}``),
        child of an incoming ``traceparent`` header. None when off: nothing to install."""
        if self._tracer is None:
            return None

        @web.middleware
        async def middleware(request: web.Request, handler):  # type: ignore[no-untyped-def]
            resource = request.match_info.route.resource
            route = resource.canonical if resource is not None else "unmatched"
            with self.span(f"{request.method} {route}", parent=request.headers.get("traceparent"),
                           kind=SpanKind.SERVER, attributes={"http.request.method": request.method,
                                                             "http.route": route}) as span:
                try:
                    response = await handler(request)
                except web.HTTPException as exc:
                    _status(span, exc.status)
                    raise
                _status(span, response.status)
                return response

        return middleware

    def instrument_engine(self, engine: Any) -> None:
        """One client span per SQL statement on ``engine`` (an AsyncEngine or Engine). Off: no listener."""
        if self._tracer is None:
            return
        from sqlalchemy import event

        sync_engine = getattr(engine, "sync_engine", engine)
        tracer = self._tracer
        system = sync_engine.dialect.name

        def before(conn: Any, cursor: Any, statement: str, params: Any, ctx: Any, many: bool) -> None:
            verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "SQL"
            span = tracer.start_span(f"{verb} {system}", kind=SpanKind.CLIENT,
                                     attributes={"db.system.name": system, "db.query.text": statement[:2000]})
            if ctx is not None:
                setattr(ctx, _SPAN_KEY, span)

        def after(conn: Any, cursor: Any, statement: str, params: Any, ctx: Any, many: bool) -> None:
            span = getattr(ctx, _SPAN_KEY, None)
            if span is not None:
                span.end()

        def failed(exc_ctx: Any) -> None:
            ctx = exc_ctx.execution_context
            span = getattr(ctx, _SPAN_KEY, None)
            if span is not None:
                span.set_status(Status(StatusCode.ERROR, type(exc_ctx.original_exception).__name__))
                span.end()

        event.listen(sync_engine, "before_cursor_execute", before)
        event.listen(sync_engine, "after_cursor_execute", after)
        event.listen(sync_engine, "handle_error", failed)

    def close(self) -> None:
        """Flushes and stops the exporter; safe twice."""
        provider, self._provider, self._tracer = self._provider, None, None
        if provider is not None:
            provider.shutdown()


def _provider(service_name: str) -> TracerProvider:
    # Resource() itself, not Resource.create(): that runs the environment detectors in a thread pool.
    return TracerProvider(resource=Resource({"service.name": service_name}))


def _status(span: Span | None, status: int) -> None:
    if span is not None:
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))


def traceparent_of(span: Span | None) -> str | None:
    """``span`` as a W3C traceparent (None for None): a parent to remember past the span's block."""
    if span is None:
        return None
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier, context=trace.set_span_in_context(span))
    return carrier.get("traceparent")
