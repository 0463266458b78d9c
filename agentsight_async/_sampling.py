"""Conversation sampling: keep a share of whole conversations, the same ones everywhere.

The decision is a pure function of the conversation id - no randomness, no
process state - so every process of a fleet (and every restart, and a
``push`` of a recording) keeps exactly the same conversations:

    keep  <=>  int.from_bytes(sha256(conversation_id.encode("utf-8"))[:8], "big") < rate * 2**64

SHA-256 rather than Python's ``hash()`` (salted per process unless
``PYTHONHASHSEED`` is set) and rather than a faster non-standard hash: any
language can recompute the decision, so another SDK or a backend job can
agree with this one.

**Keeping errors** (``keep_errors=True``).  Events stream out as they are
tracked, so when an error happens in a conversation that sampling dropped,
the events before it are gone.  What can honestly be promised, and is:
*from the first error on*, every later event of that conversation is kept
by the process that saw the error.  An error is an ``action`` event with a
non-empty ``error_msg`` (the event itself is kept); negative feedback is
whatever the caller reports through :meth:`Sampler.mark` (the SDK's feedback
call does, for ``sentiment="negative"``).  The rescue is per process: another
process of the fleet that handles later events of the same conversation does
not know about it.  Rescued ids are remembered in a bounded LRU
(:data:`MAX_RESCUED`); past it the oldest rescue is forgotten.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections import OrderedDict
from typing import Any, Final

from ._events import ACTION

#: Rescued conversations remembered per sampler (each costs ~150 bytes).
MAX_RESCUED: Final = 100_000
#: Decisions cached per sampler (a conversation's events usually come in a row).
_CACHE_SIZE: Final = 4096
_SCALE: Final = 1 << 64


def sample_point(conversation_id: str) -> int:
    """Where *conversation_id* falls in [0, 2**64): the first 8 bytes of its SHA-256."""
    digest = hashlib.sha256(conversation_id.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big")


def is_error(kind: str, data: dict[str, Any]) -> bool:
    """True for an event that rescues a sampled-out conversation: an action with an error."""
    return kind == ACTION and bool(data.get("error_msg"))


class Sampler:
    """Keeps ``rate`` of all conversations, decided from their ids alone.

    Args:
        rate: the share kept, 0 (none) to 1 (all).
        keep_errors: also keep a dropped conversation from its first error (or
            :meth:`mark`) on, in this process; see the module doc.

    Raises:
        ValueError: *rate* is not a number between 0 and 1.

    Thread-safe: the decision is pure, and the cache and the rescued set are
    guarded by a lock (held for a dict operation).
    """

    def __init__(self, rate: float, keep_errors: bool = False) -> None:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
            raise ValueError(f"rate: must be a number from 0 to 1, got {rate!r}")
        self.rate = float(rate)
        self.keep_errors = keep_errors
        # rate 1 keeps every id (no 8-byte value reaches 2**64); rate 0 keeps none.
        self._threshold = int(self.rate * _SCALE)
        self._cache: dict[str, bool] = {}
        self._rescued: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Sampler(rate={self.rate!r}, keep_errors={self.keep_errors!r})"

    @classmethod
    def from_settings(cls, settings: Any) -> Sampler | None:
        """The sampler ``settings.sample_rate`` asks for.

        Args:
            settings: a :class:`~agentsight_async.Settings` (or any object with
                ``sample_rate`` and ``sample_keep_errors`` attributes).

        Returns:
            None at rate 1 (keep everything: the caller skips the step), else a sampler.
        """
        rate = float(getattr(settings, "sample_rate", 1.0))
        if rate >= 1.0:
            return None
        return cls(rate, bool(getattr(settings, "sample_keep_errors", False)))

    def keep(self, conversation_id: str) -> bool:
        """Whether the sample holds *conversation_id*.

        Decided from a hash of the id alone, so every process of a fleet agrees
        without talking to the others.

        Args:
            conversation_id: the conversation's id.

        Returns:
            True when the conversation is in the sample.
        """
        decision = self._cache.get(conversation_id)
        if decision is None:
            decision = sample_point(conversation_id) < self._threshold
            with self._lock:
                if len(self._cache) >= _CACHE_SIZE:
                    self._cache.clear()
                self._cache[conversation_id] = decision
        return decision

    def keep_event(self, conversation_id: str, kind: str, data: dict[str, Any]) -> bool:
        """Whether to keep one event: :meth:`keep`, or - with ``keep_errors`` - a rescue.

        The pipeline calls this once per event, in tracking order.  An error
        event (:func:`is_error`) of a dropped conversation rescues it: that
        event and every later one are kept.

        Args:
            conversation_id: the event's conversation.
            kind: the event kind (``question``, ``action`` ...).
            data: the event's data in the SDK's item shape (read, never changed).

        Returns:
            True to keep the event.
        """
        if self.keep(conversation_id):
            return True
        if not self.keep_errors:
            return False
        if conversation_id in self._rescued:
            return True
        if is_error(kind, data):
            self.mark(conversation_id)
            return True
        return False

    def mark(self, conversation_id: str) -> None:
        """Keep *conversation_id* from now on (in this process), whatever the sample says.

        For negative feedback, or anything else that makes a conversation worth
        seeing.  Does nothing unless ``keep_errors`` is on.

        Args:
            conversation_id: the conversation to keep.
        """
        if not self.keep_errors:
            return
        with self._lock:
            self._rescued[conversation_id] = None
            self._rescued.move_to_end(conversation_id)
            while len(self._rescued) > MAX_RESCUED:
                self._rescued.popitem(last=False)

    def rescued(self, conversation_id: str) -> bool:
        """Whether *conversation_id* was rescued by an error or :meth:`mark`.

        Args:
            conversation_id: the conversation's id.

        Returns:
            True when this process keeps it despite the sample.
        """
        return conversation_id in self._rescued


#: The samplers of this process's trackers (a tracker's pipeline registers its own).
_live: weakref.WeakSet[Sampler] = weakref.WeakSet()


def register(sampler: Sampler) -> Sampler:
    """Let :func:`negative_feedback` reach *sampler*; returns it."""
    _live.add(sampler)
    return sampler


def negative_feedback(conversation_id: str) -> None:
    """Negative feedback on *conversation_id*: every tracker keeps it from now on.

    The SDK's feedback call (``ConversationManager.submit_feedback`` with
    ``sentiment="negative"``) calls this; it matters only with ``keep_errors``.
    """
    for sampler in list(_live):
        sampler.mark(conversation_id)
