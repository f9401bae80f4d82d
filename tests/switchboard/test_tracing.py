"""switchboard.tracing: spans reach a real OTLP/HTTP receiver (an aiohttp server decoding the
protobuf export request) when an endpoint is set; the settings refuse a non-HTTP endpoint."""

from __future__ import annotations

import asyncio
import re

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from switchboard.errors import SettingsError
from switchboard.settings import load_settings
from switchboard.tracing import Tracing, TracingSettings


async def test_spans_are_exported_over_otlp_http() -> None:
    received: list[ExportTraceServiceRequest] = []

    async def traces(request: web.Request) -> web.Response:
        assert request.content_type == "application/x-protobuf"
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        received.append(message)
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    async with TestServer(app, host="127.0.0.1") as server:
        endpoint = str(server.make_url("/v1/traces"))
        tracing = await asyncio.to_thread(Tracing.from_settings, TracingSettings(otlp_endpoint=endpoint), "api")
        with tracing.span("parent") as parent:
            assert parent is not None and tracing.traceparent() is not None
            with tracing.span("child", attributes={"room": "show-x"}):
                pass
        await asyncio.to_thread(tracing.close)  # flushes the batch: the exporter's HTTP client blocks
        tracing.close()  # twice is fine
    spans = {s.name: s for m in received for rs in m.resource_spans for ss in rs.scope_spans for s in ss.spans}
    assert set(spans) == {"parent", "child"}
    assert spans["child"].parent_span_id == spans["parent"].span_id
    service = {a.key: a.value.string_value for m in received for rs in m.resource_spans
               for a in rs.resource.attributes}["service.name"]
    assert service == "switchboard-api"


def test_tracing_is_off_by_default_and_takes_only_http_endpoints() -> None:
    assert load_settings(environ={}).tracing.otlp_endpoint == ""
    assert not Tracing.from_settings(TracingSettings(), "node").enabled
    on = load_settings(environ={"SWITCHBOARD_TRACING_OTLP_ENDPOINT": "http://127.0.0.1:4318/v1/traces"})
    assert on.tracing.otlp_endpoint == "http://127.0.0.1:4318/v1/traces"
    with pytest.raises(SettingsError, match="otlp_endpoint"):
        load_settings(environ={"SWITCHBOARD_TRACING_OTLP_ENDPOINT": "127.0.0.1:4318"})


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(), st.builds(lambda t, s, f: f"00-{t:032x}-{s:016x}-{f:02x}", st.integers(1, 2**128 - 1),
                                      st.integers(1, 2**64 - 1), st.integers(0, 255))))
def test_any_traceparent_text_makes_a_span_never_an_error(text: str) -> None:
    """``show.join``'s optional traceparent is client input: any text (lone surrogates included) is a
    parent when it is a valid W3C traceparent (whose sampled flag is kept), else ignored (a new trace)."""
    spans = InMemorySpanExporter()
    tracing = Tracing.to_exporter(spans)
    with tracing.span("show.join", parent=text):
        pass
    tracing.close()
    valid = re.fullmatch(r"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-([0-9a-f]{2})", text)
    if valid and not int(valid.group(1), 16) & 1:  # the caller's trace is not sampled: nor is this span
        assert spans.get_finished_spans() == ()
        return
    (span,) = spans.get_finished_spans()
    assert (span.parent is not None) == bool(valid), text
    if span.parent is not None:
        assert f"{span.parent.span_id:016x}" in text
