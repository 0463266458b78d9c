"""A private event loop in a daemon thread, for the blocking API clients.

The pattern of anyio's blocking portal and of the tracker's pipeline
(``Pipeline.start_loop_thread``/``call``): the sync clients run their async
core on a loop of their own, so a blocking call works from any thread - and
from inside a running event loop (Jupyter, a FastAPI handler) - without
``asyncio.run()`` per call and without deadlocking: the loop that does the
work is never the caller's.

* The thread starts on the first call, never at import or construction.
* Every wait has a deadline; past it the work is cancelled and
  :class:`ConversationNetworkException` raised.
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
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from .._exceptions import ConversationNetworkException

T = TypeVar("T")

#: Seconds :meth:`LoopThread.stop` waits for the thread to end.
STOP_TIMEOUT = 5.0


class LoopThread:
    """One event loop running in a named daemon thread, started on first use."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    @property
    def running(self) -> bool:
        """True while the loop thread of this process is up (started and not stopped)."""
        return self._loop is not None and self._pid == os.getpid()

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's thread is not here
                self._loop, self._thread, self._pid = None, None, os.getpid()
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name=self._name, daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def call(self, fn: Callable[[], Awaitable[T]], timeout: float) -> T:
        """Run ``fn()`` on the loop and wait up to *timeout* seconds for its result.

        The coroutine's own exception is raised here.

        Raises:
            ConversationNetworkException: *timeout* passed (the work is cancelled).
            RuntimeError: called from the loop's own thread.
        """
        loop = self._running_loop()
        if threading.current_thread() is self._thread:
            raise RuntimeError(
                "agentsight_async: a blocking API call was made from the client's own "
                "event-loop thread; use the async client (AsyncAgentSightAPI / "
                "AsyncConversationManager) there"
            )

        async def run() -> T:
            return await fn()

        future = asyncio.run_coroutine_threadsafe(run(), loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:  # not the builtin TimeoutError before 3.11
            future.cancel()
            raise ConversationNetworkException(
                f"agentsight_async: the call did not finish within {timeout:g} s"
            ) from None
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
