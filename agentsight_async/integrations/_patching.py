"""Patching methods on classes, reversibly, and the timing every capture shares.

A patch replaces an attribute a class defines *itself* (``vars(cls)``), so a
subclass that inherits it (``AzureOpenAI``'s resources) is covered by the one
patch, and removing it restores exactly what was there.  A wrapper carries
:data:`MARKER`, so a method is never wrapped twice even if a module that
installs patches is imported twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: Set on every wrapper we install.
MARKER = "__agentsight_capture__"


@dataclass
class Patches:
    """The patches one integration installed, to undo them in reverse order."""

    applied: list[tuple[type, str, Any]] = field(default_factory=list)

    def patch(self, owner: type, name: str, make: Callable[[Any], Any]) -> None:
        """Replace ``owner.name`` by ``make(original)``.

        Raises:
            AttributeError: when *owner* does not define *name* itself (the
                library changed): the integration then degrades.
        """
        original = vars(owner).get(name)
        if original is None:
            raise AttributeError(f"{owner.__qualname__}.{name} is not defined there")
        if getattr(original, MARKER, False):
            return
        wrapper = make(original)
        setattr(wrapper, MARKER, True)
        setattr(owner, name, wrapper)
        self.applied.append((owner, name, original))

    def undo(self) -> None:
        while self.applied:
            owner, name, original = self.applied.pop()
            setattr(owner, name, original)


def now_ns() -> int:
    """A monotonic clock for durations."""
    return time.perf_counter_ns()


def elapsed_ms(start_ns: int) -> float:
    """Milliseconds since *start_ns* (from :func:`now_ns`), to the microsecond."""
    return round((time.perf_counter_ns() - start_ns) / 1e6, 3)


def error_text(exc: BaseException) -> str:
    """What a failed call records: the exception type and any HTTP status, never its text.

    An API error's message can quote the request (user content); the type and
    status say what happened without it.
    """
    status = getattr(exc, "status_code", None)
    name = type(exc).__name__
    return f"{name} ({status})" if isinstance(status, int) else name
