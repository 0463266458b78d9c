"""A private event loop in a daemon thread: how the blocking API reaches async code.

After anyio's blocking portal.  The sync tracker (its pipeline) and the sync
reading and managing clients run their async core on a loop of their own, so a
blocking call works from any thread - and from inside a running event loop
(Jupyter, a FastAPI handler) - without ``asyncio.run()`` per call and without
deadlocking: the loop that does the work is never the caller's.

* The thread starts on first use, never at import or construction.
* Every wait has a deadline; past it the work is cancelled and the caller's
  exception for it raised.
* A call made from the loop's own thread (a callback of ours calling back in)
  raises ``RuntimeError`` instead of deadlocking.
* A forked child starts its own loop on its next call (the parent's thread
  does not exist there).
* The thread is a daemon: there is nothing to deliver at exit, and a client
  that was never closed must not keep the interpreter alive.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

#: Seconds :meth:`LoopThread.stop` waits for the thread to end.
STOP_TIMEOUT = 5.0


async def wait_within(awaitable: Awaitable[T], timeout: float | None) -> T:
    """``await awaitable``, raising ``TimeoutError`` after *timeout* seconds.

    ``asyncio.wait_for`` up to Python 3.11 drops a cancellation that arrives as
    the awaitable completes - the caller's task then goes on as if it had not
    been cancelled.  ``asyncio.timeout`` (3.11+) does not; 3.10 has only
    ``wait_for``.
    """
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(timeout):
            return await awaitable
    return await asyncio.wait_for(awaitable, timeout)  # pragma: no cover - Python 3.10


class LoopThread:
    """One event loop running in a named daemon thread, started on first use.

    *own_thread_error* is the message of the ``RuntimeError`` a blocking call
    made from the loop's own thread raises (it would wait for itself).
    """

    def __init__(self, name: str, *, own_thread_error: str) -> None:
        self._name = name
        self._own_thread_error = own_thread_error
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    @property
    def running(self) -> bool:
        """True while the loop thread of this process is up (started and not stopped)."""
        return self._loop is not None and self._pid == os.getpid()

    def started_in_parent(self) -> bool:
        """In a forked child: True when the parent had started the loop thread."""
        return self._loop is not None and self._pid != os.getpid()

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop, while it runs in this process."""
        return self._loop if self.running else None

    def in_own_thread(self) -> bool:
        """True when called from the loop's own thread."""
        return threading.current_thread() is self._thread

    def start(self) -> asyncio.AbstractEventLoop:
        """The running loop, starting its thread first if needed (idempotent)."""
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's thread is not here
                self._loop, self._thread, self._pid = None, None, os.getpid()
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name=self._name, daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def call(
        self,
        fn: Callable[[], Awaitable[T]],
        timeout: float | None,
        timeout_error: Callable[[], BaseException],
    ) -> T:
        """Run ``fn()`` on the loop and wait up to *timeout* seconds for its result.

        The coroutine's own exception is raised here; ``timeout_error()`` when
        *timeout* passes (the work is cancelled).

        Raises:
            RuntimeError: called from the loop's own thread.
        """
        loop = self.start()
        if self.in_own_thread():
            raise RuntimeError(self._own_thread_error)

        async def run() -> T:
            return await fn()

        future = asyncio.run_coroutine_threadsafe(run(), loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:  # not the builtin TimeoutError before 3.11
            future.cancel()
            raise timeout_error() from None
        except BaseException:  # KeyboardInterrupt while waiting: do not leave it running
            future.cancel()
            raise

    def stop(self) -> None:
        """Stop the loop and its thread (a no-op if it never started); it can start again."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None or self._pid != os.getpid():
            return
        loop.call_soon_threadsafe(loop.stop)
        if thread is not threading.current_thread():
            thread.join(STOP_TIMEOUT)
        if not thread.is_alive():
            loop.close()
