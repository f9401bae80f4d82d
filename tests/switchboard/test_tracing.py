"""switchboard.tracing: spans reach a real OTLP/HTTP receiver (an aiohttp server decoding the
protobuf export request) when an endpoint is set; the settings refuse a non-HTTP endpoint."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

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
