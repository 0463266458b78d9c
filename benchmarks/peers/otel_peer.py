"""OpenTelemetry SDK: one span with one event per message, on a BatchSpanProcessor
whose exporter discards (runs in its own virtualenv)."""

from __future__ import annotations

from collections.abc import Sequence

import _common as c
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult


class Discard(SpanExporter):
    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def percall(cfg: dict) -> dict:
    exporter = Discard()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))  # defaults, as users get them
    tracer = provider.get_tracer("benchmark")
    attrs = {"content": c.MESSAGE, "sender": "end_user", "conversation_id": "bench-percall"}
    start = tracer.start_as_current_span

    def call() -> None:
        with start("message") as span:
            span.add_event("message", attrs)

    run = c.loop_timer(call)
    c.time_batches(run, max(1, cfg["batches"] // 10), cfg["per_batch"])
    result = c.per_call_summary(
        c.time_batches(run, cfg["batches"], cfg["per_batch"]), cfg["per_batch"]
    )
    provider.shutdown()
    result["exported_spans"] = exporter.spans
    return result


if __name__ == "__main__":
    cfg = c.config()
    c.emit({"percall": percall}[cfg["bench"]](cfg))
