"""Which conversation an event belongs to when the call does not say.

The rule, in order (documented in ``docs/concepts/conversations.md``):

1. ``conversation_id=`` given to the call;
2. the current conversation of this asyncio task or thread - set by
   ``get_or_create_conversation()`` or a ``conversation()`` block in it, or
   inherited by a task from the code that created it;
3. the *configured* default, ``AGENTSIGHT_CONVERSATION_ID`` or
   ``configure(conversation_id=...)``;
4. the *script* default: the conversation that plain synchronous code on the
   main thread (no event loop running) last set - so a script that sets its
   conversation once and then tracks from worker threads keeps working, as
   with the original SDK.  Conversations set inside an asyncio task or on any
   other thread are theirs alone: a sibling task or another request's thread
   never picks them up;
5. nothing: in a script's main thread a conversation is generated
   (``conv_<12 hex>``, the original behaviour, announced once in the log and
   reported by ``send_tracked_data()``); anywhere else the call raises
   :class:`MissingConversationIdException` - never a guess.

Each tracker (a sync facade and its ``.aio`` share one) has its own
:class:`ConversationContext`, so trackers never see each other's conversations.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import secrets
import threading
from typing import Any

from . import _validation as v
from ._exceptions import MissingConversationIdException

logger = logging.getLogger("agentsight_async")

#: Conversation ids remembered as valid (the cache is cleared when it reaches this).
VALID_IDS_CACHE = 10_000

_NO_CONVERSATION = (
    "conversation_id: this {where} has no current conversation and none can be inferred "
    "without guessing. Set one for it - `async with tracker.conversation(id):`, or "
    "get_or_create_conversation(id) in the same task or thread - or pass conversation_id=."
)


def is_script_context() -> bool:
    """True for plain synchronous code on the main thread (no event loop running)."""
    if threading.current_thread() is not threading.main_thread():
        return False
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return True
    return False


class ConversationContext:
    """The current conversation per task/thread, and the process defaults."""

    def __init__(self) -> None:
        self._current: contextvars.ContextVar[str | None] = contextvars.ContextVar(
            "agentsight_conversation_id", default=None
        )
        #: ``AGENTSIGHT_CONVERSATION_ID`` or ``configure(conversation_id=...)``.
        self.configured: str | None = None
        #: What the main thread's synchronous code set last.
        self.script: str | None = None
        #: Conversations generated because nothing was set (a script's main thread only).
        self.generated: set[str] = set()
        self._valid: set[str] = set()

    @property
    def current(self) -> str | None:
        """The conversation an event from here would go to, or None (never raises)."""
        return self._current.get() or self.configured or self.script

    def set_current(self, conversation_id: str) -> None:
        """Make a (valid) conversation current here (``get_or_create_conversation``)."""
        self._current.set(conversation_id)
        if is_script_context():
            self.script = conversation_id

    def enter(self, conversation_id: str) -> contextvars.Token[str | None]:
        """Make *conversation_id* current in this context only (a ``with`` block)."""
        return self._current.set(conversation_id)

    def exit(self, token: contextvars.Token[str | None]) -> None:
        self._current.reset(token)

    def resolve(self, explicit: Any) -> str:
        """The conversation an event goes to (see the module docstring).

        Raises :class:`MissingConversationIdException` when there is none to
        use, and the validation exceptions for an invalid explicit id.
        """
        if explicit is not None:
            if type(explicit) is str and explicit in self._valid:
                return explicit
            valid = v.conversation_id(explicit)
            if len(self._valid) >= VALID_IDS_CACHE:
                self._valid.clear()
            self._valid.add(valid)
            return valid
        current = self._current.get() or self.configured or self.script
        if current is not None:
            return current
        if not is_script_context():
            where = "thread" if _in_thread_without_loop() else "asyncio task"
            raise MissingConversationIdException(_NO_CONVERSATION.format(where=where))
        current = f"conv_{secrets.token_hex(6)}"
        self.generated.add(current)
        self.set_current(current)
        logger.warning(
            "agentsight_async: nothing was tracked into a named conversation yet; events go "
            "to the generated conversation %s. Call get_or_create_conversation() first to "
            "choose one.",
            current,
        )
        return current


def _in_thread_without_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return True
    return False
