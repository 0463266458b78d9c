"""Entry point: ``python -m benchmarks.run [--quick] [--rounds N] [--only percall,e2e,...]``.

Builds (or reuses) one virtualenv per peer under ``benchmarks/.venvs``, runs
the measurements in alternating rounds, each run a fresh process, and writes
``benchmarks/results/latest.json``, ``latest.md`` and ``chart.png``.  A full
run of every suite into the default directory also rewrites the generated
blocks of ``docs/performance.md`` and README.md's Performance section (between
``<!-- bench:begin -->`` and ``<!-- bench:end -->``), so the numbers quoted
there are always the last full run's; ``--no-docs`` leaves them alone.
``--quick`` (CI) uses tiny counts and one round: it only checks that every
benchmark still runs, writes to ``results/quick/`` and never touches the docs.
Nothing is asserted about timings: the goals are reported, never enforced.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from . import chart, envs, report, suites

RESULTS = Path(__file__).resolve().parent / "results"

#: Rounds per suite in a full run (quick: 1).
FULL_ROUNDS = {
    "percall": 5,
    "e2e": 3,
    "lag": 3,
    "memory": 1,
    "scaling": 3,
    "capacity": 3,
    "push": 3,
    "otlp": 3,
    "collector": 3,
}


def _machine() -> dict[str, Any]:
    model = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import psutil

        mem = psutil.virtual_memory().total
    except ImportError:
        mem = None
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_bytes": mem,
    }


def _source() -> dict[str, Any]:
    """Which SDK code was measured: the commit and a hash of the package's files as they are."""
    import hashlib
    import subprocess

    repo = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted((repo / "agentsight_async").rglob("*.py")):
        digest.update(path.relative_to(repo).as_posix().encode())
        digest.update(path.read_bytes())
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "agentsight_async"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        head, dirty = "", ""
    return {
        "commit": head or None,
        "sdk_files_modified": bool(dirty),
        "sdk_sha256": digest.hexdigest()[:16],
    }


def _log(msg: str) -> None:
    print(msg, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--quick", action="store_true", help="tiny counts, one round (CI)")
    ap.add_argument("--rounds", type=int, help="rounds per suite (default: per suite)")
    ap.add_argument("--only", help="comma-separated suites: " + ",".join(suites.SUITES))
    ap.add_argument("--no-peers", action="store_true", help="skip the peers' virtualenvs")
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="results directory (default results/, or results/quick/ with --quick)",
    )
    ap.add_argument(
        "--no-docs",
        action="store_true",
        help="do not rewrite the generated blocks of docs/performance.md and README.md",
    )
    args = ap.parse_args(argv)

    # Only a full run of everything, into the results we commit, may speak for the docs.
    update_docs = not (args.quick or args.only or args.no_docs or args.out is not None)
    if args.out is None:  # a CI check must not overwrite the numbers we quote
        args.out = RESULTS / "quick" if args.quick else RESULTS
    t0 = time.monotonic()
    chosen = list(suites.SUITES) if not args.only else [x.strip() for x in args.only.split(",")]
    unknown = [x for x in chosen if x not in suites.SUITES]
    if unknown:
        ap.error(f"unknown suite(s): {', '.join(unknown)}")

    if args.no_peers:
        peer_envs: dict[str, envs.Env] = {
            n: envs.Env(p, None, 0.0, "--no-peers") for n, p in envs.PEERS.items()
        }
    else:
        _log(f"peer virtualenvs under {envs.VENVS} ...")
        peer_envs = envs.ensure_all(timeout=35 if args.quick else 300)
        for name, env in peer_envs.items():
            state = (
                f"ready ({env.seconds:.1f} s) {env.versions}"
                if env.python
                else f"SKIPPED: {env.error}"
            )
            _log(f"  {name:<20} {state}")

    results: dict[str, Any] = {
        "started": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": args.quick,
        "rounds": args.rounds or (1 if args.quick else max(FULL_ROUNDS.values())),
        "machine": _machine(),
        "source": _source(),
        "peer_versions": {n: e.versions for n, e in peer_envs.items()},
        "peer_skipped": {n: e.error for n, e in peer_envs.items() if e.python is None},
        "suites": {},
    }
    try:
        import agentsight_async

        results["agentsight_async_version"] = agentsight_async.__version__
        results["source"]["sdk_path"] = str(Path(agentsight_async.__file__).parent)
        _log(f"SDK measured: {results['source']['sdk_path']}")
    except Exception as exc:  # pragma: no cover - reported, not fatal
        results["agentsight_async_version"] = f"import failed: {exc}"

    for name in chosen:
        n_rounds = args.rounds or (1 if args.quick else FULL_ROUNDS[name])
        _log(f"\n== {name} ({n_rounds} round(s))")
        started = time.monotonic()
        try:
            suite = suites.SUITES[name](peer_envs, args.quick, n_rounds, _log)
            results["suites"][name] = suite.as_dict()
        except Exception as exc:
            _log(f"  suite {name} FAILED: {type(exc).__name__}: {exc}")
            results["suites"][name] = {
                "error": f"{type(exc).__name__}: {exc}",
                "subjects": {},
                "ratios": {},
            }
        _log(f"  ({time.monotonic() - started:.0f} s)")

    results["seconds"] = time.monotonic() - t0
    jpath, mpath = report.write(results, args.out)
    png = chart.write(results, args.out / "chart.png")
    _log(f"\nwrote {jpath}, {mpath}" + (f", {png}" if png else " (no matplotlib: no chart)"))
    if update_docs:
        for path in report.update_docs(results):
            _log(f"updated the generated block of {path}")
    for issue in (14, 6):
        _log(f"\nissue-{issue} goals:")
        for g in results["goals"]:
            if g.get("issue") == issue:
                _log(f"  {g['status']:>12}  {g['goal']}: {g['shown']}")
    failed = [
        n
        for n, s in results["suites"].items()
        if "error" in s
        or any(sub["errors"] and not any(sub["runs"]) for sub in s["subjects"].values())
    ]
    _log(f"\ntotal {results['seconds']:.0f} s")
    if failed:
        _log(f"benchmarks that did not run: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
