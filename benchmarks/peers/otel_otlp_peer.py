"""OpenTelemetry SDK doing our OTLP job: the same agent turns as spans with the GenAI
attributes, on a BatchSpanProcessor with the OTLP/HTTP exporter (protobuf, gzip) to the
discarding sink (runs in its own virtualenv)."""

from __future__ import annotations

import json
import time

import _common as c
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind


def _messages(role: str, text: str) -> str:
    message: dict = {"role": role, "parts": [{"type": "text", "content": text}]}
    if role == "assistant":
        message["finish_reason"] = "stop"
    return json.dumps([message])


def otlp(cfg: dict) -> dict:
    convs, turns = cfg["conversations"], cfg["turns"]
    items = convs * turns * c.ITEMS_PER_TURN
    exporter = OTLPSpanExporter(
        endpoint=cfg["endpoint"] + "/v1/traces", compression=Compression.Gzip
    )
    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    # A queue that holds every span: the SDK must deliver them all, as we do, not drop.
    # (never below the default 2,048: a quick run's few items would undercut the batch size)
    queue = max(items + 16, 2048)
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=queue))
    tracer = provider.get_tracer("bench")
    start = tracer.start_as_current_span
    cpu0, t0 = time.process_time(), time.perf_counter()
    for _ in range(turns):
        for i in range(convs):  # the conversations interleave, as concurrent chats do
            conv = {
                "gen_ai.conversation.id": f"conv-{i}",
                "session.id": f"conv-{i}",
                "user.id": f"customer-{i}",
            }
            with start(
                "invoke_agent",
                kind=SpanKind.INTERNAL,
                attributes={
                    **conv,
                    "gen_ai.operation.name": "invoke_agent",
                    "gen_ai.input.messages": _messages("user", c.MESSAGE),
                },
            ):
                with start(
                    f"execute_tool {c.TOOL}",
                    attributes={
                        **conv,
                        "gen_ai.operation.name": "execute_tool",
                        "gen_ai.tool.name": c.TOOL,
                        "gen_ai.tool.call.arguments": json.dumps(c.TOOL_ARGS),
                        "gen_ai.tool.call.result": c.TOOL_RESULT,
                    },
                ):
                    pass
                with start(
                    f"chat {c.MODEL}",
                    kind=SpanKind.CLIENT,
                    attributes={
                        **conv,
                        "gen_ai.operation.name": "chat",
                        "gen_ai.provider.name": c.PROVIDER,
                        "gen_ai.request.model": c.MODEL,
                        "gen_ai.usage.input_tokens": c.PROMPT_TOKENS,
                        "gen_ai.usage.output_tokens": c.COMPLETION_TOKENS,
                    },
                ):
                    pass
                with start(
                    "agentsight.message",
                    attributes={**conv, "gen_ai.output.messages": _messages("assistant", c.REPLY)},
                ):
                    pass
    flushed = provider.force_flush(600_000)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    provider.shutdown()
    return {
        "items": items,
        "elapsed_s": elapsed,
        "cpu_s": cpu,
        "events_per_s": items / elapsed,
        "cpu_us_per_event": cpu / items * 1e6,
        "flushed": bool(flushed),
    }


if __name__ == "__main__":
    cfg = c.config()
    c.emit({"otlp": otlp}[cfg["bench"]](cfg))
