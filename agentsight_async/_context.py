"""Which conversation an event belongs to when the call does not say.

Each tracker (a sync facade and its ``.aio`` share one) has its own
:class:`ConversationContext`: a ``ContextVar`` - so each asyncio task and each
thread has its own current conversation, and tasks inherit their creator's -
plus the process default, and a bounded cache of conversation ids already
validated, so the hot path skips re-checking them.
"""

from __future__ import annotations

import contextvars
import secrets
from typing import Any

from . import _validation as v

#: Conversation ids remembered as valid (the cache is cleared when it reaches this).
VALID_IDS_CACHE = 10_000


class ConversationContext:
    """The current conversation per task/thread, and the process default."""

    def __init__(self, default: str | None = None) -> None:
        self._current: contextvars.ContextVar[str | None] = contextvars.ContextVar(
            "agentsight_conversation_id", default=None
        )
        #: The conversation for code that never set one in its own context.
        self.default = default
        self._valid: set[str] = set()

    @property
    def current(self) -> str | None:
        """This task's or thread's conversation, else the process default, else None."""
        return self._current.get() or self.default

    def set_current(self, conversation_id: str) -> None:
        """Make a (valid) conversation current here, and the process default."""
        self._current.set(conversation_id)
        self.default = conversation_id

    def enter(self, conversation_id: str) -> contextvars.Token[str | None]:
        """Make *conversation_id* current in this context only (a ``with`` block)."""
        return self._current.set(conversation_id)

    def exit(self, token: contextvars.Token[str | None]) -> None:
        self._current.reset(token)

    def resolve(self, explicit: Any) -> str:
        """The conversation an event goes to: *explicit*, else the current one.

        With no conversation anywhere, one is generated (``conv_<12 hex>``), as
        the original SDK did for single-conversation scripts.  Raises the
        validation exceptions for an invalid explicit id.
        """
        if explicit is not None:
            if type(explicit) is str and explicit in self._valid:
                return explicit
            valid = v.conversation_id(explicit)
            if len(self._valid) >= VALID_IDS_CACHE:
                self._valid.clear()
            self._valid.add(valid)
            return valid
        current = self._current.get() or self.default
        if current is None:
            current = f"conv_{secrets.token_hex(6)}"
            self.set_current(current)
        return current
