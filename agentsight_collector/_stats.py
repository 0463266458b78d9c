"""The dashboard's numbers: activity over time, tokens, action latency and errors, feedback.

Plain aggregations over the store, computed in one read snapshot.  Deleted
conversations are left out, as listings leave them out.  Conventions:

* an *event* is a tracked transcript item: a message, an action (not the
  synthetic legacy ``token_usage`` one), a button click or an attachment;
* activity is bucketed by UTC hour when everything falls within two days,
  else by UTC day (the last :data:`MAX_BUCKETS` buckets, every bucket shown,
  empty ones too);
* latency percentiles are nearest-rank over the actions that state a
  ``duration_ms`` (p50 of 10, 20, 30, 40 is 20; p95 is 40);
* feedback counts what is attached to a conversation (``agent``-kind
  feedback has none, so no environment either, and is left out).
"""

from __future__ import annotations

import math
import sqlite3
from datetime import datetime, timezone
from typing import Any

HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
#: At most this many buckets on the activity chart (the newest ones).
MAX_BUCKETS = 60
SENTIMENT_ORDER = ("positive", "neutral", "negative")


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile *p* (0-100) of a non-empty ascending list."""
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def dashboard(conn: sqlite3.Connection, *, environment: str | None = None) -> dict[str, Any]:
    """Everything the dashboard page draws.

    Returns:
        ``{"totals", "activity", "tokens_by_model", "actions", "feedback"}``:
        ``totals`` counts conversations, messages, events, actions, action
        errors, tokens and feedback; ``activity`` is ``{"unit", "buckets":
        [{"start", "events", "conversations"}]}``; ``tokens_by_model`` rows
        ``{"model", "input_tokens", "output_tokens", "total_tokens", "calls"}``
        (most tokens first); ``actions`` rows ``{"action_name", "calls",
        "errors", "timed", "p50_ms", "p95_ms"}`` (most calls first);
        ``feedback`` is ``{"by_sentiment": {sentiment: n}, "by_source":
        {source: {sentiment: n}}, "total"}``.
    """
    scope = "c.deleted_at IS NULL" + (" AND c.environment = ?" if environment else "")
    params: tuple[Any, ...] = (environment,) if environment else ()
    items = _item_times(conn, scope, params)
    started = [
        int(r[0])
        for r in conn.execute(f"SELECT c.started_us FROM conversations c WHERE {scope}", params)
    ]
    tokens = _tokens_by_model(conn, scope, params)
    actions = _actions(conn, scope, params)
    feedback = _feedback(conn, scope, params)
    messages = int(
        conn.execute(
            f"SELECT COUNT(*) FROM messages m JOIN conversations c ON c.id = m.conversation "
            f"WHERE {scope}",
            params,
        ).fetchone()[0]
    )
    return {
        "totals": {
            "conversations": len(started),
            "messages": messages,
            "events": len(items),
            "actions": sum(a["calls"] for a in actions),
            "action_errors": sum(a["errors"] for a in actions),
            "total_tokens": sum(t["total_tokens"] for t in tokens),
            "feedback": feedback["total"],
        },
        "activity": activity(items, started),
        "tokens_by_model": tokens,
        "actions": actions,
        "feedback": feedback,
    }


def _item_times(conn: sqlite3.Connection, scope: str, params: tuple[Any, ...]) -> list[int]:
    parts = []
    for table, extra in (
        ("messages", ""),
        ("actions", " AND t.is_token_usage = 0"),
        ("buttons", ""),
        ("attachments", ""),
    ):
        parts.append(
            f"SELECT t.ts_us FROM {table} t JOIN conversations c ON c.id = t.conversation "
            f"WHERE {scope}{extra}"
        )
    sql = " UNION ALL ".join(parts)
    return [int(r[0]) for r in conn.execute(sql, params * len(parts))]


def activity(items: list[int], started: list[int]) -> dict[str, Any]:
    """Events (*items*' times) and conversations (*started* times) per UTC hour or day.

    Args:
        items, started: UTC microseconds since the epoch.

    Returns:
        ``{"unit": "hour" | "day", "buckets": [{"start": ISO, "start_us",
        "events", "conversations"}]}``, oldest first, gaps included; no
        buckets when there is nothing.
    """
    times = items + started
    if not times:
        return {"unit": "day", "buckets": []}
    first, last = min(times), max(times)
    size = HOUR_US if last - first <= 2 * DAY_US else DAY_US
    end = last // size
    begin = max(first // size, end - MAX_BUCKETS + 1)
    counts = {b: [0, 0] for b in range(begin, end + 1)}
    for index, series in enumerate((items, started)):
        for t in series:
            bucket = counts.get(t // size)
            if bucket is not None:
                bucket[index] += 1
    return {
        "unit": "hour" if size == HOUR_US else "day",
        "buckets": [
            {
                "start": datetime.fromtimestamp(b * size / 1e6, timezone.utc).isoformat(),
                "start_us": b * size,
                "events": events,
                "conversations": conversations,
            }
            for b, (events, conversations) in counts.items()
        ],
    }


def _tokens_by_model(
    conn: sqlite3.Connection, scope: str, params: tuple[Any, ...]
) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT t.model, SUM(t.input_tokens), SUM(t.output_tokens), SUM(t.total_tokens), "
        "COUNT(*) FROM token_usage t JOIN conversations c ON c.id = t.conversation "
        f"WHERE {scope} GROUP BY t.model ORDER BY SUM(t.total_tokens) DESC, t.model",
        params,
    ).fetchall()
    return [
        {
            "model": r[0],
            "input_tokens": int(r[1]),
            "output_tokens": int(r[2]),
            "total_tokens": int(r[3]),
            "calls": int(r[4]),
        }
        for r in rows
    ]


def _actions(conn: sqlite3.Connection, scope: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT a.action_name, a.duration_ms, a.status FROM actions a "
        f"JOIN conversations c ON c.id = a.conversation WHERE {scope} AND a.is_token_usage = 0",
        params,
    ).fetchall()
    by_name: dict[str, dict[str, Any]] = {}
    for name, duration, status in rows:
        entry = by_name.setdefault(name, {"calls": 0, "errors": 0, "durations": []})
        entry["calls"] += 1
        entry["errors"] += status == "error"
        if duration is not None:
            entry["durations"].append(float(duration))
    out = []
    for name, entry in by_name.items():
        durations = sorted(entry["durations"])
        out.append(
            {
                "action_name": name,
                "calls": entry["calls"],
                "errors": entry["errors"],
                "timed": len(durations),
                "p50_ms": percentile(durations, 50) if durations else None,
                "p95_ms": percentile(durations, 95) if durations else None,
            }
        )
    out.sort(key=lambda a: (-a["calls"], a["action_name"]))
    return out


def _feedback(conn: sqlite3.Connection, scope: str, params: tuple[Any, ...]) -> dict[str, Any]:
    rows = conn.execute(
        "SELECT f.source, f.sentiment, COUNT(*) FROM feedbacks f "
        f"JOIN conversations c ON c.id = f.conversation WHERE {scope} "
        "GROUP BY f.source, f.sentiment",
        params,
    ).fetchall()
    by_sentiment = dict.fromkeys(SENTIMENT_ORDER, 0)
    by_source: dict[str, dict[str, int]] = {}
    for source, sentiment, count in rows:
        by_sentiment[sentiment] = by_sentiment.get(sentiment, 0) + int(count)
        by_source.setdefault(source, dict.fromkeys(SENTIMENT_ORDER, 0))[sentiment] = int(count)
    return {
        "by_sentiment": by_sentiment,
        "by_source": by_source,
        "total": sum(by_sentiment.values()),
    }
