"""One virtualenv per comparator, created on first use and cached under ``benchmarks/.venvs``.

A venv is reused when its ``.bench-spec`` marker matches the requirement and
the interpreter version; otherwise it is rebuilt.  Venvs are built in
parallel, each with a deadline; one that cannot be built is reported and its
peer skipped, never fatal.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENVS = ROOT / ".venvs"


@dataclass(frozen=True)
class Peer:
    name: str  # key in results
    label: str  # for tables and the chart
    requirements: tuple[str, ...]
    script: str  # under benchmarks/peers/


PEERS: dict[str, Peer] = {
    p.name: p
    for p in (
        Peer("agentsight_0_0_44", "agentsight 0.0.44", ("agentsight==0.0.44",), "legacy044.py"),
        Peer("agentsight_0_1_4", "agentsight 0.1.4", ("agentsight==0.1.4",), "agentsight014.py"),
        Peer("posthog", "PostHog capture", ("posthog",), "posthog_peer.py"),
        Peer("otel", "OpenTelemetry span+event", ("opentelemetry-sdk",), "otel_peer.py"),
        Peer(
            "otel_otlp",
            "OpenTelemetry SDK + OTLP/HTTP exporter",
            ("opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http"),
            "otel_otlp_peer.py",
        ),
    )
}


@dataclass
class Env:
    peer: Peer
    python: Path | None
    seconds: float
    error: str | None = None
    versions: dict[str, str] | None = None


def _spec(peer: Peer) -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}|" + " ".join(peer.requirements)


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _base_python() -> str:
    # Build from the base interpreter, not the venv we run in (nox's or the project's).
    return getattr(sys, "_base_executable", None) or sys.executable


def _installed_versions(python: Path, peer: Peer) -> dict[str, str]:
    names = [r.split("==")[0].split(">")[0].split("<")[0] for r in peer.requirements]
    code = (
        "import importlib.metadata as m, json, sys; "
        "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))"
    )
    out = subprocess.run(
        [str(python), "-c", code, *names], capture_output=True, text=True, timeout=60
    )
    import json

    return json.loads(out.stdout) if out.returncode == 0 else {}


def ensure(peer: Peer, timeout: float) -> Env:
    t0 = time.monotonic()
    venv = VENVS / peer.name
    marker = venv / ".bench-spec"
    try:
        if not (marker.exists() and marker.read_text() == _spec(peer) and _python(venv).exists()):
            if venv.exists():
                shutil.rmtree(venv)
            VENVS.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [_base_python(), "-m", "venv", str(venv)],
                check=True,
                capture_output=True,
                timeout=timeout,
            )
            left = max(5.0, timeout - (time.monotonic() - t0))
            proc = subprocess.run(
                [
                    str(_python(venv)),
                    "-m",
                    "pip",
                    "install",
                    "-q",
                    "--disable-pip-version-check",
                    *peer.requirements,
                ],
                capture_output=True,
                text=True,
                timeout=left,
            )
            if proc.returncode != 0:
                tail = "\n".join(
                    line for line in proc.stderr.splitlines() if "is ignored" not in line
                )[-500:]
                raise RuntimeError(f"pip install failed: {tail}")
            marker.write_text(_spec(peer))
        return Env(
            peer,
            _python(venv),
            time.monotonic() - t0,
            None,
            _installed_versions(_python(venv), peer),
        )
    except subprocess.TimeoutExpired:
        return Env(peer, None, time.monotonic() - t0, f"venv not ready within {timeout:.0f} s")
    except Exception as exc:
        return Env(peer, None, time.monotonic() - t0, f"{type(exc).__name__}: {exc}")


def ensure_all(timeout: float) -> dict[str, Env]:
    with ThreadPoolExecutor(max_workers=len(PEERS)) as pool:
        futures = {name: pool.submit(ensure, peer, timeout) for name, peer in PEERS.items()}
        return {name: f.result() for name, f in futures.items()}
