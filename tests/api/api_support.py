"""Helpers for the reading/managing client tests: a scripted transport and a fake clock."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from agentsight_async.testing import DUMMY_API_KEY

KEY = DUMMY_API_KEY
BASE = "https://agentsight.test"

Answer = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


def reply(status: int = 200, body: Any = None, **headers: str) -> httpx.Response:
    """An answer with a JSON body (``{}`` by default); *headers* with ``_`` for ``-``."""
    return httpx.Response(
        status,
        json={} if body is None else body,
        headers={k.replace("_", "-"): v for k, v in headers.items()},
    )


class Script:
    """An ``httpx.MockTransport`` that answers from a script and records every request.

    Each request takes the next answer; the last one repeats.  An answer is a
    response, an exception to raise (a network failure), or a function of the
    request.
    """

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers) or [reply()]
        self.requests: list[httpx.Request] = []
        self.transport = httpx.MockTransport(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            return answer(request)
        return answer

    @property
    def calls(self) -> list[tuple[str, str]]:
        """``(method, path)`` of every request."""
        return [(r.method, r.url.path) for r in self.requests]

    def body(self, index: int = -1) -> Any:
        """The JSON body of a request."""
        return json.loads(self.requests[index].content)

    def params(self, index: int = -1) -> dict[str, str]:
        return dict(self.requests[index].url.params)


class FakeTime:
    """A monotonic clock that moves only when the retry policy sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def page(results: list[dict[str, Any]], count: int | None = None, next_url: Any = None) -> Any:
    """A DRF-style page answer."""
    return reply(
        200,
        {
            "count": len(results) if count is None else count,
            "next": next_url,
            "previous": None,
            "results": results,
        },
    )
