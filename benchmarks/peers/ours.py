"""agentsight-async workloads (run in the project's own interpreter, one fresh process each).

Benches: ``floor`` (a bare ``deque.append``), ``percall`` (sync facade or
``await``, hot path only or with the flusher uploading), ``e2e`` (delivered
to the local collector), ``lag`` (event-loop lag probe), ``memory`` (RSS during
an outage and after recovery), ``scaling`` (cost per event by number of
conversations) and ``capacity`` (delivery to a sink that discards).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import resource
import sys
import threading
import time
from collections import deque
from typing import Any

import _common as c

logging.getLogger("agentsight_async").setLevel(logging.CRITICAL)

from agentsight_async import AsyncConversationTracker, ConversationTracker  # noqa: E402

# Hot path only: nothing wakes the flusher while we measure (the interval is an
# hour and a batch never fills), so only the caller's own cost is timed.
IDLE = {"flush_interval": 3600.0, "batch_size": 100_000, "max_queue_events": 10_000_000}


def _rss() -> int:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


# --- per call ---------------------------------------------------------------------------------
def floor(cfg: dict) -> dict:
    q: deque[tuple[Any, ...]] = deque()
    append, msg = q.append, c.MESSAGE
    item = ("question", "bench", 0, msg)
    run = c.loop_timer(lambda: append(item))
    c.time_batches(run, max(1, cfg["batches"] // 10), cfg["per_batch"])
    return c.per_call_summary(
        c.time_batches(run, cfg["batches"], cfg["per_batch"]), cfg["per_batch"]
    )


def _knobs(cfg: dict) -> dict[str, Any]:
    return dict(IDLE) if cfg.get("hot_only") else {}


def percall_sync(cfg: dict) -> dict:
    tracker = ConversationTracker(
        api_key=c.DUMMY_KEY, endpoint=cfg["endpoint"], protocol="ingest", **_knobs(cfg)
    )
    tracker.get_or_create_conversation("bench-percall")
    track, msg = tracker.track_human_message, c.MESSAGE
    run = c.loop_timer(lambda: track(msg))
    c.time_batches(run, max(1, cfg["batches"] // 10), cfg["per_batch"])
    result = c.per_call_summary(
        c.time_batches(run, cfg["batches"], cfg["per_batch"]), cfg["per_batch"]
    )
    stats = tracker.aio.stats()
    result.update(
        delivered_during=stats["delivered"],
        requests_during=stats["requests"],
        in_flight_at_end=stats["in_flight"],
        dropped=stats["dropped_total"],
    )
    result["closed_ok"] = bool(tracker.close(30))
    return result


def percall_async(cfg: dict) -> dict:
    async def main() -> dict:
        async with AsyncConversationTracker(
            api_key=c.DUMMY_KEY, endpoint=cfg["endpoint"], protocol="ingest", **_knobs(cfg)
        ) as tracker:
            async with tracker.conversation("bench-percall"):
                track, msg, clock = tracker.track_human_message, c.MESSAGE, time.perf_counter_ns

                async def run(n: int) -> int:
                    r = range(n)
                    t0 = clock()
                    for _ in r:
                        await track(msg)
                    elapsed = clock() - t0
                    await asyncio.sleep(0)  # let the flusher run between batches, as an agent would
                    return elapsed

                per_batch = cfg["per_batch"]
                for _ in range(max(1, cfg["batches"] // 10)):
                    await run(per_batch)
                batch_ns = [await run(per_batch) for _ in range(cfg["batches"])]
            result = c.per_call_summary(batch_ns, per_batch)
            stats = tracker.stats()
            result.update(delivered_during=stats["delivered"], dropped=stats["dropped_total"])
            await tracker.aclose(5)
        return result

    return asyncio.run(main())


def percall(cfg: dict) -> dict:
    return percall_async(cfg) if cfg["form"] == "async" else percall_sync(cfg)


# --- delivery ---------------------------------------------------------------------------------
async def _produce(tracker: AsyncConversationTracker, convs: int, per_conv: int) -> None:
    """*convs* concurrent tasks, each tracking *per_conv* messages into its own conversation."""

    async def one(i: int) -> None:
        async with tracker.conversation(f"c{i}"):
            for j in range(per_conv):
                if j % 2:
                    await tracker.track_agent_message(c.REPLY)
                else:
                    await tracker.track_human_message(c.MESSAGE)
                if convs > 1 and j % 10 == 9:
                    await asyncio.sleep(0)  # interleave the conversations

    await asyncio.gather(*(one(i) for i in range(convs)))


def e2e(cfg: dict) -> dict:
    """Track, flush, and time until every event is confirmed by the server."""
    convs, per_conv = cfg["conversations"], cfg["events_per_conversation"]

    async def main() -> dict:
        tracker = AsyncConversationTracker(
            api_key=cfg["api_key"],
            endpoint=cfg["endpoint"],
            protocol=cfg["protocol"],
            max_queue_events=max(100_000, convs * per_conv + convs),
        )
        async with tracker:
            cpu0, t0 = time.process_time(), time.perf_counter()
            await _produce(tracker, convs, per_conv)
            t_tracked = time.perf_counter()
            flushed = bool(await tracker.flush(600))
            elapsed = time.perf_counter() - t0
            cpu = time.process_time() - cpu0
            stats = tracker.stats()
        return {
            "elapsed_s": elapsed,
            "track_s": t_tracked - t0,
            "cpu_s": cpu,
            "tracked": convs * per_conv,
            "flushed": flushed,
            "sdk_delivered": stats["delivered"],
            "dropped": stats["dropped_total"],
            "requests": stats["requests"],
        }

    return asyncio.run(main())


def capacity(cfg: dict) -> dict:
    """Same as e2e, against a sink that discards: what the SDK alone can push.

    CPU is the whole process's (tracking, encoding, delivery) per tracked message;
    ``complete`` says the flush confirmed every one delivered (the SDK's ``delivered``
    also counts one conversation record per conversation).
    """
    result = e2e(cfg)
    result["events_per_s"] = result["tracked"] / result["elapsed_s"]
    result["cpu_us_per_event"] = result["cpu_s"] / result["tracked"] * 1e6
    result["complete"] = result["flushed"] and not result["dropped"]
    return result


def scaling(cfg: dict) -> dict:
    """Cost per event with N conversations live at once, delivery to a discarding sink."""
    convs, total = cfg["conversations"], cfg["events"]
    per_conv = max(1, total // convs)

    async def main() -> dict:
        tracker = AsyncConversationTracker(
            api_key=c.DUMMY_KEY,
            endpoint=cfg["endpoint"],
            protocol="ingest",
            max_queue_events=max(100_000, 2 * total),
        )
        async with tracker:
            clock = time.perf_counter_ns
            spent = [0]

            async def one(i: int) -> None:
                async with tracker.conversation(f"c{i}"):
                    track, msg = tracker.track_human_message, c.MESSAGE
                    done = 0
                    while done < per_conv:
                        n = min(10, per_conv - done)
                        t0 = clock()
                        for _ in range(n):
                            await track(msg)
                        spent[0] += clock() - t0
                        done += n
                        await asyncio.sleep(0)

            cpu0, t0 = time.process_time(), time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(convs)))
            t_tracked = time.perf_counter()
            flushed = bool(await tracker.flush(600))
            cpu = time.process_time() - cpu0
            elapsed = time.perf_counter() - t0
            stats = tracker.stats()
        events = convs * per_conv
        return {
            "conversations": convs,
            "events": events,
            "track_us_per_event": spent[0] / events / 1000,
            "wall_track_us_per_event": (t_tracked - t0) / events * 1e6,
            "cpu_us_per_event": cpu / events * 1e6,
            "elapsed_s": elapsed,
            "flushed": flushed,
            "delivered": stats["delivered"],
            "dropped": stats["dropped_total"],
        }

    return asyncio.run(main())


# --- OTLP export (the same turns the OpenTelemetry SDK peer sends) ---------------------------
def otlp(cfg: dict) -> dict:
    """Conversations of agent turns (message, tool, model call, reply) exported over ``otlp``
    (or ``ingest``, for comparison) to a discarding sink: CPU per item and items/s, from
    the first tracked item until flush confirms the last."""
    convs, turns = cfg["conversations"], cfg["turns"]
    items = convs * turns * c.ITEMS_PER_TURN

    async def main() -> dict:
        tracker = AsyncConversationTracker(
            api_key=c.DUMMY_KEY,
            endpoint=cfg["endpoint"],
            protocol=cfg["protocol"],
            otlp_encoding=cfg.get("encoding", "protobuf"),
            otlp_capture_content=True,
            max_queue_events=max(100_000, 2 * items),
        )
        total = c.PROMPT_TOKENS + c.COMPLETION_TOKENS

        async def one(i: int) -> None:
            async with tracker.conversation(f"conv-{i}", customer_id=f"customer-{i}"):
                for _ in range(turns):
                    await tracker.track_human_message(c.MESSAGE)
                    await tracker.track_action(
                        c.TOOL,
                        duration_ms=c.TOOL_MS,
                        tools_used=c.TOOL_ARGS,
                        response=c.TOOL_RESULT,
                    )
                    await tracker.track_token_usage(
                        c.PROMPT_TOKENS,
                        c.COMPLETION_TOKENS,
                        total,
                        model=c.MODEL,
                        system=c.PROVIDER,
                    )
                    await tracker.track_agent_message(c.REPLY)
                    await asyncio.sleep(0)  # the conversations interleave, as concurrent chats do

        async with tracker:
            cpu0, t0 = time.process_time(), time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(convs)))
            flushed = await tracker.flush(600)
            elapsed = time.perf_counter() - t0
            cpu = time.process_time() - cpu0
            stats = tracker.stats()
        return {
            "items": items,
            "elapsed_s": elapsed,
            "cpu_s": cpu,
            "events_per_s": items / elapsed,
            "cpu_us_per_event": cpu / items * 1e6,
            "flushed": bool(flushed),
            "delivered": stats["delivered"],
            "dropped": stats["dropped_total"],
            "requests": stats["requests"],
        }

    return asyncio.run(main())


# --- event-loop lag ------------------------------------------------------------------------------
def lag(cfg: dict) -> dict:
    """A probe task sleeps 1 ms in a loop and records how late it wakes.

    Producers track ``rate`` events/s (paced every millisecond) across
    ``conversations`` tasks while the flusher uploads to the collector.  With
    ``baseline`` the producers run the same pacing but track nothing.
    """
    rate, duration, convs = cfg["rate"], cfg["duration_s"], cfg["conversations"]
    baseline = cfg.get("baseline", False)

    async def main() -> dict:
        tracker = AsyncConversationTracker(
            api_key=cfg["api_key"], endpoint=cfg["endpoint"], protocol="ingest"
        )
        lags: list[float] = []
        tracked = [0]
        stop = asyncio.Event()

        async def probe() -> None:
            period, clock = 0.001, time.perf_counter
            warmup_until = clock() + cfg.get("warmup_s", 0.25)  # startup is not steady state
            while not stop.is_set():
                t0 = clock()
                await asyncio.sleep(period)
                if t0 >= warmup_until:
                    lags.append((clock() - t0 - period) * 1000.0)

        async def producer(i: int) -> None:
            share = rate / convs
            async with tracker.conversation(f"lag-{i}"):
                start, done = time.perf_counter(), 0
                while not stop.is_set():
                    due = int(share * (time.perf_counter() - start)) - done
                    for _ in range(due):
                        if not baseline:
                            await tracker.track_human_message(c.MESSAGE)
                    done += max(due, 0)
                    tracked[0] += max(due, 0)
                    await asyncio.sleep(0.001)

        async with tracker:
            tasks = [asyncio.create_task(producer(i)) for i in range(convs)]
            probe_task = asyncio.create_task(probe())
            t0 = time.perf_counter()
            await asyncio.sleep(duration)
            stop.set()
            await asyncio.gather(probe_task, *tasks)
            elapsed = time.perf_counter() - t0
            flushed = bool(await tracker.flush(120))
            stats = tracker.stats()
        lags.sort()
        return {
            "p50_ms": c.percentile(lags, 50),
            "p99_ms": c.percentile(lags, 99),
            "max_ms": lags[-1] if lags else float("nan"),
            "samples": len(lags),
            "achieved_rate": tracked[0] / elapsed,
            "tracked": 0 if baseline else tracked[0],
            "delivered": stats["delivered"],
            "flushed": flushed,
        }

    return asyncio.run(main())


# --- memory during an outage ---------------------------------------------------------------------
def memory(cfg: dict) -> dict:
    """Track ``events`` while the endpoint is down, then wait for the orchestrator to
    bring a server up on that port and for the queue to drain."""
    events, cap = cfg["events"], cfg["max_queue_bytes"]

    async def main() -> dict:
        gc.collect()
        rss_base = _rss()
        tracker = AsyncConversationTracker(
            api_key=c.DUMMY_KEY,
            endpoint=cfg["endpoint"],
            protocol="ingest",
            max_queue_bytes=cap,
            max_queue_events=10 * events,  # the byte cap is the one that binds
            retry_budget=3600,
            request_timeout=2,
        )
        samples: list[int] = []
        stop = threading.Event()

        def sampler() -> None:
            while not stop.wait(0.05):
                samples.append(_rss())

        thread = threading.Thread(target=sampler, daemon=True)
        thread.start()
        async with tracker:
            rss_start = _rss()
            t0 = time.perf_counter()
            async with tracker.conversation("outage"):
                track, msg = tracker.track_human_message, c.MESSAGE
                for i in range(events):
                    await track(msg)
                    if i % 1000 == 999:
                        await asyncio.sleep(0)
            track_s = time.perf_counter() - t0
            samples.append(_rss())
            during = tracker.stats()
            # Tell the orchestrator the outage phase is over; it starts a server on the port.
            sys.stdout.write("OUTAGE_DONE\n")
            sys.stdout.flush()
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
            t1 = time.perf_counter()
            flushed = bool(await tracker.flush(cfg.get("recovery_timeout", 120)))
            recovery_s = time.perf_counter() - t1
            after = tracker.stats()
            gc.collect()
            rss_after = _rss()
        stop.set()
        thread.join()
        peak = max([*samples, _rss()])
        return {
            "events": events,
            "cap_bytes": cap,
            "rss_base": rss_base,
            "rss_start": rss_start,
            "rss_peak_sampled": peak,
            "rss_peak_ru": _peak_rss(),
            "growth_peak": peak - rss_start,
            "rss_after_recovery": rss_after,
            "growth_after_recovery": rss_after - rss_start,
            "queued_events_peak": during["queued_events"],
            "queued_bytes_peak": during["queued_bytes"],
            "dropped_queue_full": during["dropped"]["queue_full"],
            "track_s": track_s,
            "recovery_s": recovery_s,
            "flushed": flushed,
            "delivered": after["delivered"],
            "dropped_after": after["dropped_total"],
        }

    return asyncio.run(main())


BENCHES = {
    "floor": floor,
    "percall": percall,
    "e2e": e2e,
    "capacity": capacity,
    "scaling": scaling,
    "lag": lag,
    "memory": memory,
    "otlp": otlp,
}

if __name__ == "__main__":
    cfg = c.config()
    c.emit(BENCHES[cfg["bench"]](cfg))
