"""The collector's ingest path in-process: record real ingest bodies, replay them into storage.

    python -m benchmarks.ingest_replay record DIR   # our SDK -> a collector thread; bodies saved
    python -m benchmarks.ingest_replay replay DIR [--profile N] [--rounds N]

``record`` serves the collector app on a loopback thread, wrapped so every
``POST /api/ingest/`` body is saved as received (with its ``Content-Encoding``),
and has our SDK, in its own process as in the ``collector`` suite, send the
suite's two loads (1 x 20,000 and 1,000 x 20 events).  ``replay`` feeds those
bodies, in order, through what the app's ``ingest`` handler runs in its storage
thread (inflate, parse, validate, store, encode the answer) into a fresh SQLite
file, and reports the process CPU per stored message - the storage side of the
suite's figure, without uvicorn/starlette and without another process competing
for the same cores.  With ``--profile N`` it prints the top N functions of a
cProfile run instead.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

LOADS = {"1conv": (1, 20_000), "1000conv": (1000, 20)}


def record(out: Path) -> None:
    import uvicorn

    from agentsight_collector import create_app
    from benchmarks import _proc, suites
    from benchmarks.sink import free_port

    for load, (convs, per_conv) in LOADS.items():
        target = out / load
        target.mkdir(parents=True, exist_ok=True)
        bodies: list[tuple[str, bytes]] = []
        with tempfile.TemporaryDirectory() as tmp:
            app = create_app(str(Path(tmp) / "rec.db"), [], dev=True)

            async def recorder(
                scope: Any, receive: Any, send: Any, app: Any = app, bodies: Any = bodies
            ) -> None:
                if scope["type"] != "http" or scope["path"] != "/api/ingest/":
                    await app(scope, receive, send)
                    return
                chunks: list[bytes] = []
                more = True
                while more:
                    message = await receive()
                    chunks.append(message.get("body", b""))
                    more = message.get("more_body", False)
                body = b"".join(chunks)
                headers = dict(scope["headers"])
                bodies.append((headers.get(b"content-encoding", b"").decode(), body))
                sent = False

                async def replay_receive() -> dict[str, Any]:
                    nonlocal sent
                    if sent:
                        return {"type": "http.disconnect"}
                    sent = True
                    return {"type": "http.request", "body": body, "more_body": False}

                await app(scope, replay_receive, send)

            port = free_port()
            server = uvicorn.Server(
                uvicorn.Config(recorder, host="127.0.0.1", port=port, log_level="warning")
            )
            thread = threading.Thread(target=server.run, daemon=True)
            thread.start()
            while not server.started:
                time.sleep(0.01)

            # the sender in its own process, as the collector suite runs it
            cfg = {
                "bench": "e2e",
                "protocol": "ingest",
                "conversations": convs,
                "events_per_conversation": per_conv,
                "endpoint": f"http://127.0.0.1:{port}",
                "api_key": suites.KEY,
            }
            _proc.run(_proc.ours_python(), suites.OURS, cfg, timeout=600)
            server.should_exit = True
            thread.join(10)
        for i, (encoding, body) in enumerate(bodies):
            (target / f"{i:05d}.{encoding or 'identity'}").write_bytes(body)
        print(f"{load}: {len(bodies)} bodies, {sum(len(b) for _, b in bodies):,} bytes")


def _bodies(directory: Path) -> list[tuple[str | None, bytes]]:
    out: list[tuple[str | None, bytes]] = []
    for path in sorted(directory.iterdir()):
        encoding = path.suffix[1:]
        out.append((None if encoding == "identity" else encoding, path.read_bytes()))
    return out


def _replay_once(bodies: list[tuple[str | None, bytes]], db: str) -> tuple[float, int]:
    import orjson

    from agentsight_collector import Storage
    from agentsight_collector._http import (
        DEFAULT_MAX_DECOMPRESSED_BYTES,
        decode_body,
        parse_json_object,
    )

    storage = Storage(db)
    cpu0 = time.process_time()
    for encoding, raw in bodies:  # what the app's ingest handler runs in its storage thread
        body = decode_body(raw, encoding, DEFAULT_MAX_DECOMPRESSED_BYTES)
        orjson.dumps(storage.ingest(parse_json_object(body)))
    cpu = time.process_time() - cpu0
    with storage.read() as conn:
        stored = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
    storage.close()
    return cpu, int(stored)


def replay(directory: Path, rounds: int, profile: int) -> None:
    import gc

    import agentsight_collector._app  # noqa: F401 - imported before anything is timed

    for load in LOADS:
        bodies = _bodies(directory / load)
        results = []
        for _ in range(rounds):
            with tempfile.TemporaryDirectory() as tmp:
                db = str(Path(tmp) / "replay.db")
                gc.collect()
                gc.disable()  # as the served collector does (pause_gc) while it ingests
                try:
                    if profile:
                        prof = cProfile.Profile()
                        prof.enable()
                        cpu, stored = _replay_once(bodies, db)
                        prof.disable()
                        stats = pstats.Stats(prof)
                        print(f"== {load}: {stored} messages")
                        stats.sort_stats("tottime").print_stats(profile)
                        stats.sort_stats("cumulative").print_stats(profile)
                        return_after = True
                    else:
                        cpu, stored = _replay_once(bodies, db)
                        return_after = False
                finally:
                    gc.enable()
            results.append(cpu / stored * 1e6)
            if return_after:
                break
        print(
            json.dumps(
                {
                    "load": load,
                    "cpu_us_per_stored_event_median": round(statistics.median(results), 2),
                    "rounds": [round(r, 2) for r in results],
                }
            )
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.ingest_replay")
    ap.add_argument("mode", choices=["record", "replay"])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--profile", type=int, default=0, help="print the top N functions")
    args = ap.parse_args(argv)
    if args.mode == "record":
        record(args.dir)
    else:
        replay(args.dir, args.rounds, args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
