"""The collector as users run it: ``python -m agentsight_collector`` in its own process.

:class:`Serve` starts it on a free loopback port with a fresh SQLite file and
waits for ``/healthz``; its pid is what ``benchmarks.peers.collector_load`` measures.  With
*code* (a directory holding an ``agentsight_async`` and an
``agentsight_collector`` package, e.g. from :func:`checkout`) that code is
served instead of the working tree's, so two versions can be measured side
by side in one run.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from types import TracebackType

from . import _proc
from .sink import free_port

START_TIMEOUT = 30.0


class Serve:
    """``with Serve(key) as server: server.url, server.pid, server.db_path``."""

    def __init__(self, api_key: str, *, code: Path | None = None) -> None:
        self.api_key = api_key
        self.code = code
        self.port = free_port()
        self._tmp = tempfile.TemporaryDirectory(prefix="agentsight-bench-serve-")
        self.db_path = str(Path(self._tmp.name) / "collector.db")
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self._proc is not None, "serve is not running"
        return self._proc.pid

    def start(self) -> Serve:
        env = _proc._env(None)
        if self.code is not None:
            env["PYTHONPATH"] = os.pathsep.join(
                filter(None, [str(self.code), env.get("PYTHONPATH")])
            )
        cmd = [sys.executable, "-m", "agentsight_collector", "--port", str(self.port)]
        cmd += ["--db", self.db_path, "--api-key", self.api_key]
        self._proc = subprocess.Popen(
            cmd,
            cwd=self._tmp.name if self.code is not None else _proc.REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not self._healthy():
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                raise RuntimeError(f"serve exited {self._proc.returncode}: {err[-400:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"serve did not answer /healthz within {START_TIMEOUT:.0f} s")
            time.sleep(0.05)
        return self

    def _healthy(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request("GET", "/healthz")
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    def count(self, table: str) -> int:
        """Rows in *table* of the server's database (read-only, beside the running server)."""
        con = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=30)
        try:
            return int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        finally:
            con.close()

    def stop(self) -> None:
        """SIGINT (uvicorn's clean stop), then kill if it lingers; remove the database."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc is not None and proc.stderr is not None:
            proc.stderr.close()
        self._tmp.cleanup()

    def __enter__(self) -> Serve:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def checkout(rev: str, into: Path) -> Path:
    """The SDK and collector packages as of git revision *rev*, extracted under *into*.

    ``git archive`` writes the files without touching the repository's work
    trees; the result goes on ``PYTHONPATH`` ahead of the installed packages.
    """
    into.mkdir(parents=True, exist_ok=True)
    archive = into / "code.tar"
    with archive.open("wb") as out:
        subprocess.run(
            ["git", "archive", "--format=tar", rev, "agentsight_async", "agentsight_collector"],
            cwd=_proc.REPO,
            stdout=out,
            check=True,
            timeout=60,
        )
    with tarfile.open(archive) as tar, contextlib.suppress(TypeError):
        tar.extractall(into, filter="data")
    if not (into / "agentsight_collector").is_dir():  # Python without extraction filters
        with tarfile.open(archive) as tar:
            tar.extractall(into)
    archive.unlink()
    return into
