"""Behaviours the docs' recipes ran into, fixed since: each test keeps the fix.

* a sync tracker started before a fork delivers the child's events in the
  background (the child's first event starts its own loop thread);
* ``aclose()`` on a new loop sends what a loop that ended left queued;
* sibling workers forked after import draw different event ids.
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
        # no blocking call here: only the background flusher can deliver it
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if "child" in [r["data"]["content"] for r in recorded("memory://fork")]:
                os._exit(0)
            time.sleep(0.05)
        os._exit(1)
    _, status = os.waitpid(pid, 0)
    raise SystemExit(os.waitstatus_to_exitcode(status))
    """
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX fork")
def test_a_started_sync_tracker_delivers_in_a_forked_child_in_the_background() -> None:
    result = subprocess.run([sys.executable, "-c", FORK_CHILD], timeout=60, check=False)
    assert result.returncode == 0


def test_aclose_on_a_new_loop_sends_what_the_ended_loop_left() -> None:
    url = "memory://findings-aclose"
    clear_recorded(url)
    tracker = AsyncConversationTracker(endpoint=url)

    async def track() -> None:
        await tracker.track_human_message("left behind", conversation_id="c1")

    asyncio.run(track())  # the loop ends before the flusher's interval passes
    result = asyncio.run(tracker.aclose())
    assert [r["data"]["content"] for r in recorded(url)] == ["left behind"], result


SIBLING_IDS = textwrap.dedent(
    """
    import os
    import agentsight_async  # imported before the fork, as gunicorn --preload or Celery do
    from agentsight_async import ConversationTracker
    from agentsight_async.testing import recorded

    children = []
    for _ in range(2):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            tracker = ConversationTracker(endpoint="memory://ids", lazy=True)
            tracker.track_human_message("hi", conversation_id="shared-chat")
            tracker.flush()
            os.write(write, recorded("memory://ids")[0]["span_id"].encode())
            os._exit(0)
        os.waitpid(pid, 0)
        children.append(os.read(read, 64).decode())
    print(children[0], children[1])
    raise SystemExit(0 if children[0] != children[1] else 1)
    """
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX fork")
def test_sibling_workers_forked_after_import_get_different_event_ids() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SIBLING_IDS], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout
