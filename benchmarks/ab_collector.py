"""The ``collector`` suite's measure for two versions of the collector, alternating.

    python -m benchmarks.ab_collector [--base main] [--rounds 3] [--quick]

Each round serves the collector from git revision *base* (extracted with
:func:`benchmarks.serve.checkout`) and from this working tree, one after the
other, and sends both the same load with our SDK (``_collector_run`` of the
suite); the order alternates between rounds so drift on a shared machine hits
both alike.  Prints the median collector CPU per stored event of each.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from . import _proc, suites
from .serve import checkout


def _run(code: Path, convs: int, per_conv: int) -> dict[str, Any]:
    result = suites._collector_run(convs, per_conv, code=code)
    return {"stored": result["stored"], "cpu_us": result["cpu_us_per_stored_event"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.ab_collector")
    ap.add_argument("--base", default="main")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    scenarios = suites.COLLECTOR_QUICK if args.quick else suites.COLLECTOR_SCENARIOS
    with tempfile.TemporaryDirectory(prefix="agentsight-ab-") as tmp:
        versions = {args.base: checkout(args.base, Path(tmp)), "tree": _proc.REPO}
        samples: dict[tuple[str, str], list[float]] = {}
        for i in range(args.rounds):
            order = list(versions) if i % 2 == 0 else list(reversed(versions))
            for scen, (convs, per_conv) in scenarios.items():
                for label in order:
                    r = _run(versions[label], convs, per_conv)
                    print(f"round {i} {scen} {label}: {r}", flush=True)
                    if r["stored"] == convs * per_conv and r["cpu_us"] is not None:
                        samples.setdefault((scen, label), []).append(r["cpu_us"])
        summary = {
            f"{s} {label}": round(statistics.median(v), 2) for (s, label), v in samples.items()
        }
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
