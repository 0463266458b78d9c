"""Behaviours found while writing the docs' recipes that differ from what the SDK documents.

Each is a strict xfail with the cause in its reason (the reliability suite's
convention): when a fix lands the test passes, strict mode turns that into a
failure, and the marker - and the workaround the recipe pages describe - can go.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap

import pytest

from agentsight_async import AsyncConversationTracker
from agentsight_async.testing import clear_recorded, recorded

FORK_CHILD = textwrap.dedent(
    """
    import os, time
    from agentsight_async import ConversationTracker
    from agentsight_async.testing import recorded

    tracker = ConversationTracker(endpoint="memory://fork")  # started in the parent
    tracker.track_human_message("parent", conversation_id="p")
    tracker.flush()
    pid = os.fork()
    if pid == 0:
        tracker.track_human_message("child", conversation_id="c")
        time.sleep(3 * tracker.settings.flush_interval)
        delivered = [r["data"]["content"] for r in recorded("memory://fork")]
        os._exit(0 if "child" in delivered else 1)
    _, status = os.waitpid(pid, 0)
    raise SystemExit(os.waitstatus_to_exitcode(status))
    """
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX fork")
@pytest.mark.xfail(
    strict=True,
    reason="a ConversationTracker whose loop thread started before a fork never starts it "
    "in the child on track_* calls (BaseTracker._message only calls _start() when the "
    "pipeline is None; reset_in_child keeps the pipeline), so the child's events wait "
    "for a blocking call or the exit hook. docs/recipes/workers.md and celery.md create "
    "their trackers with lazy=True, unused before the fork.",
)
def test_a_started_sync_tracker_delivers_in_a_forked_child_in_the_background() -> None:
    result = subprocess.run([sys.executable, "-c", FORK_CHILD], timeout=60, check=False)
    assert result.returncode == 0


@pytest.mark.xfail(
    strict=True,
    reason="aclose() from a new loop, after the loop the tracker was bound to ended, drops "
    "the queued events as 'shutdown' (Pipeline.aclose sees the old flusher's loop closed) "
    "instead of sending them, as any track_* or flush() call from that loop would.",
)
def test_aclose_on_a_new_loop_sends_what_the_ended_loop_left() -> None:
    url = "memory://findings-aclose"
    clear_recorded(url)
    tracker = AsyncConversationTracker(endpoint=url)

    async def track() -> None:
        await tracker.track_human_message("left behind", conversation_id="c1")

    asyncio.run(track())  # the loop ends before the flusher's interval passes
    result = asyncio.run(tracker.aclose())
    assert [r["data"]["content"] for r in recorded(url)] == ["left behind"], result
