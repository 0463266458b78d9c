"""Read what the managing scenario left, with the published ``agentsight==0.1.4`` data plane.

Runs inside that client's own virtualenv after ``legacy_manage.py``; shows
that 0.1.4's ``agentsight.api.AgentSight`` reads the same data (its list
sends ``full=false``, resolves string ids through the list filter with
``include_deleted=true``, and walks pages by number).  Usage::

    python v014_read.py URL KEY RESULT.json
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version

from agentsight.api import AgentSight


def main(url: str, key: str, out_path: str) -> None:
    with AgentSight(key, endpoint=url) as ags:
        listed = sorted(c["conversation_id"] for c in ags.conversations.list())
        everything = sorted(
            (c["conversation_id"], c["is_deleted"])
            for c in ags.conversations.list(include_deleted=True)
        )
        marked = sorted(c["conversation_id"] for c in ags.conversations.list(is_marked=True))
        one = ags.conversations.get("m-1")
        deleted = ags.conversations.get("m-3", full=False)
        attachments = ags.conversations.attachments("m-1")
        feedback = [
            (f["conversation_id"], f["sentiment"], f["comment"]) for f in ags.feedbacks.list()
        ]
        count = ags.conversations.list(include_deleted=True).count()
        result = {
            "version": version("agentsight"),
            "listed": listed,
            "everything": everything,
            "marked": marked,
            "count": count,
            "get": {"name": one["name"], "messages": [m["content"] for m in one["messages"]]},
            "deleted": {
                "is_deleted": deleted["is_deleted"],
                "has_transcript": "transcript" in deleted,
            },
            "attachments": [f["filename"] for g in attachments["results"] for f in g["files"]],
            "feedback": feedback,
        }
    with open(out_path, "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
