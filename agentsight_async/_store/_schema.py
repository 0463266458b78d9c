"""The SQLite schema and its migrations.

The schema version lives in ``PRAGMA user_version``.  ``MIGRATIONS[i]`` takes a
database from version ``i`` to ``i + 1``; opening a file applies the missing
steps in order, each in its own transaction, so a database written by an older
collector (or by an older SDK through ``sqlite:///``) is upgraded in place and
a half-applied step can never be observed.  Steps are append-only: never edit
a released step, add a new one.

Every transcript row (conversations, messages, actions, buttons, attachments,
token usage, feedback) takes its primary key from one ``object_ids`` sequence.
Ids are then unique across kinds - as the stand-in server in the captures
answered - and ``(ts_us, id)`` orders a transcript by time and then by
insertion order across all kinds.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

from ._errors import SchemaVersionError

Migration = Callable[[sqlite3.Connection], None]


def _v1_initial(conn: sqlite3.Connection) -> None:
    _run_script(
        conn,
        """
        CREATE TABLE object_ids (
            id   INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL
        );
        CREATE TABLE conversations (
            id                  INTEGER PRIMARY KEY,
            agent_id            INTEGER NOT NULL,
            conversation_id     TEXT NOT NULL,
            customer_id         TEXT,
            customer_ip_address TEXT,
            device              TEXT,
            source              TEXT,
            language            TEXT,
            name                TEXT,
            environment         TEXT NOT NULL,
            metadata            TEXT,
            is_used             INTEGER NOT NULL DEFAULT 0,
            started_at          TEXT NOT NULL,
            started_us          INTEGER NOT NULL,
            last_activity       TEXT NOT NULL,
            last_activity_us    INTEGER NOT NULL,
            created_at          TEXT NOT NULL,
            updated_at          TEXT NOT NULL,
            UNIQUE (agent_id, conversation_id)
        );
        CREATE TABLE messages (
            id           INTEGER PRIMARY KEY,
            conversation INTEGER NOT NULL REFERENCES conversations(id),
            sender       TEXT NOT NULL,
            content      TEXT NOT NULL,
            metadata     TEXT,
            timestamp    TEXT NOT NULL,
            ts_us        INTEGER NOT NULL,
            span_id      TEXT,
            created_at   TEXT NOT NULL
        );
        CREATE TABLE actions (
            id             INTEGER PRIMARY KEY,
            conversation   INTEGER NOT NULL REFERENCES conversations(id),
            action_name    TEXT NOT NULL,
            started_at     TEXT,
            ended_at       TEXT,
            duration_ms    REAL,
            tools_used     TEXT,
            response       TEXT,
            error_msg      TEXT,
            status         TEXT,
            metadata       TEXT,
            is_token_usage INTEGER NOT NULL DEFAULT 0,
            timestamp      TEXT NOT NULL,
            ts_us          INTEGER NOT NULL,
            span_id        TEXT,
            created_at     TEXT NOT NULL
        );
        CREATE TABLE buttons (
            id           INTEGER PRIMARY KEY,
            conversation INTEGER NOT NULL REFERENCES conversations(id),
            button_event TEXT NOT NULL,
            label        TEXT NOT NULL,
            value        TEXT NOT NULL,
            metadata     TEXT,
            timestamp    TEXT NOT NULL,
            ts_us        INTEGER NOT NULL,
            span_id      TEXT,
            created_at   TEXT NOT NULL
        );
        CREATE TABLE attachments (
            id           INTEGER PRIMARY KEY,
            conversation INTEGER NOT NULL REFERENCES conversations(id),
            message      INTEGER REFERENCES messages(id),
            sender       TEXT NOT NULL,
            mode         TEXT,
            metadata     TEXT,
            origin       TEXT NOT NULL,
            timestamp    TEXT NOT NULL,
            ts_us        INTEGER NOT NULL,
            span_id      TEXT,
            created_at   TEXT NOT NULL
        );
        CREATE TABLE attachment_files (
            id         INTEGER PRIMARY KEY,
            attachment INTEGER NOT NULL REFERENCES attachments(id),
            position   INTEGER NOT NULL,
            filename   TEXT NOT NULL,
            mime_type  TEXT,
            size       INTEGER,
            data       BLOB
        );
        CREATE TABLE token_usage (
            id                 INTEGER PRIMARY KEY,
            conversation       INTEGER NOT NULL REFERENCES conversations(id),
            input_tokens       INTEGER NOT NULL DEFAULT 0,
            output_tokens      INTEGER NOT NULL DEFAULT 0,
            embedding_tokens   INTEGER NOT NULL DEFAULT 0,
            cache_read_tokens  INTEGER NOT NULL DEFAULT 0,
            cache_write_tokens INTEGER NOT NULL DEFAULT 0,
            total_tokens       INTEGER NOT NULL DEFAULT 0,
            model              TEXT,
            system             TEXT,
            origin             TEXT NOT NULL,
            action             INTEGER REFERENCES actions(id),
            timestamp          TEXT NOT NULL,
            ts_us              INTEGER NOT NULL,
            span_id            TEXT,
            created_at         TEXT NOT NULL
        );
        CREATE TABLE spans (
            id             INTEGER PRIMARY KEY AUTOINCREMENT,
            conversation   INTEGER NOT NULL REFERENCES conversations(id),
            span_id        TEXT NOT NULL,
            trace_id       TEXT,
            parent_span_id TEXT,
            kind           TEXT NOT NULL,
            name           TEXT,
            started_at     TEXT,
            raw            TEXT NOT NULL,
            received_at    TEXT NOT NULL,
            UNIQUE (conversation, span_id)
        );
        CREATE TABLE feedbacks (
            id           INTEGER PRIMARY KEY,
            conversation INTEGER REFERENCES conversations(id),
            kind         TEXT NOT NULL,
            sentiment    TEXT NOT NULL,
            comment      TEXT,
            metadata     TEXT,
            extra        TEXT,
            route        TEXT NOT NULL,
            created_at   TEXT NOT NULL
        );
        """,
    )


def _v2_idempotency_and_indexes(conn: sqlite3.Connection) -> None:
    """Idempotency keys for REST writes, and indexes for the read API."""
    _run_script(
        conn,
        """
        CREATE TABLE idempotency_keys (
            agent_id   INTEGER NOT NULL,
            route      TEXT NOT NULL,
            key        TEXT NOT NULL,
            response   TEXT NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (agent_id, route, key)
        );
        CREATE INDEX ix_conversations_activity ON conversations (last_activity_us, id);
        CREATE INDEX ix_conversations_started ON conversations (started_us);
        CREATE INDEX ix_conversations_customer ON conversations (customer_id);
        CREATE INDEX ix_messages_conv ON messages (conversation, ts_us);
        CREATE INDEX ix_actions_conv ON actions (conversation, ts_us);
        CREATE INDEX ix_buttons_conv ON buttons (conversation, ts_us);
        CREATE INDEX ix_attachments_conv ON attachments (conversation, ts_us);
        CREATE INDEX ix_attachment_files_att ON attachment_files (attachment);
        CREATE INDEX ix_token_usage_conv ON token_usage (conversation, ts_us);
        """,
    )


def _v3_manage_conversations(conn: sqlite3.Connection) -> None:
    """Managing conversations: marks, soft delete, feedback source.

    ``is_marked`` and ``deleted_at`` (``NULL`` while the conversation is not
    deleted) back the management routes; ``feedbacks.source`` tells feedback
    sent through the API (``customer``: what an end user said, through the
    host application) from feedback left on the collector's own pages
    (``platform``), the ``feedback_source`` filter's two values.  Existing
    rows become unmarked, not deleted, and customer feedback.  The indexes
    serve the list's feedback and action filters.
    """
    _run_script(
        conn,
        """
        ALTER TABLE conversations ADD COLUMN is_marked INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE conversations ADD COLUMN deleted_at TEXT;
        ALTER TABLE feedbacks ADD COLUMN source TEXT NOT NULL DEFAULT 'customer';
        CREATE INDEX ix_feedbacks_conv ON feedbacks (conversation);
        CREATE INDEX ix_actions_name ON actions (action_name)
        """,
    )


def _v4_model_call_details(conn: sqlite3.Connection) -> None:
    """What a captured model call adds to its token usage: reasoning tokens, duration,
    streamed or not, the error, and the model asked for and the operation when they
    differ from what was billed.  ``streamed`` is NULL when the sender did not say."""
    _run_script(
        conn,
        """
        ALTER TABLE token_usage ADD COLUMN reasoning_tokens INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE token_usage ADD COLUMN duration_ms REAL;
        ALTER TABLE token_usage ADD COLUMN streamed INTEGER;
        ALTER TABLE token_usage ADD COLUMN error TEXT;
        ALTER TABLE token_usage ADD COLUMN requested_model TEXT;
        ALTER TABLE token_usage ADD COLUMN operation TEXT
        """,
    )


#: ``MIGRATIONS[i]`` upgrades a database from ``user_version == i`` to ``i + 1``.
MIGRATIONS: Sequence[Migration] = (
    _v1_initial,
    _v2_idempotency_and_indexes,
    _v3_manage_conversations,
    _v4_model_call_details,
)
LATEST_VERSION = len(MIGRATIONS)


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run DDL statements one by one, inside the caller's transaction.

    ``executescript`` would COMMIT first, breaking the one-transaction-per-step
    promise; the DDL here holds no semicolons inside statements.
    """
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def configure(conn: sqlite3.Connection, *, wal: bool) -> None:
    """Per-connection settings.

    ``busy_timeout`` makes a writer in another process wait instead of failing
    with "database is locked"; within one process writes are serialised by the
    store's lock anyway.

    ``wal_autocheckpoint`` is raised from 1,000 pages (4 MiB) to 10,000 (about
    40 MiB of WAL): ingest commits once per conversation block, and many small
    commits rewrite the same few pages (a table's last leaf, its indexes), so a
    checkpoint copies far fewer distinct pages per commit - and fsyncs, with
    ``synchronous=NORMAL`` only a checkpoint does, far less often.
    """
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA foreign_keys = ON")
    if wal:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA wal_autocheckpoint = 10000")


def schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Apply the missing steps; return the final version.

    The connection must be in autocommit mode (``isolation_level=None``) so
    that each step, together with its ``user_version`` bump, is one explicit
    transaction.
    """
    current = schema_version(conn)
    if current > len(migrations):
        raise SchemaVersionError(
            f"database schema version {current} is newer than this agentsight-async "
            f"supports ({len(migrations)}); upgrade agentsight-async"
        )
    for version in range(current, len(migrations)):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-check under the write lock: another process may have migrated.
            if schema_version(conn) != version:
                conn.execute("ROLLBACK")
                continue
            migrations[version](conn)
            conn.execute(f"PRAGMA user_version = {version + 1:d}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return schema_version(conn)
