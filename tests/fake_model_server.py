"""A loopback fake of the OpenAI and Anthropic HTTP APIs, for capture tests and docs.

Standard library only (``http.server`` on a thread), so any process can use it:
our tests, the documentation's examples, the benchmark, and the published
0.1.4 client's own virtualenv through its URL.  The clients reach it through
their own ``base_url`` - ``server.openai_url`` (``.../v1``) and
``server.anthropic_url`` - with any API key.

Routes: ``POST /v1/chat/completions``, ``/v1/responses``, ``/v1/embeddings``,
``/v1/completions`` (OpenAI) and ``/v1/messages`` (Anthropic), JSON or SSE
(``"stream": true``).  Usage numbers are deterministic and different for each
request; every usage object the server sends is appended to
:attr:`FakeModelServer.reported`, so a test compares what was captured with
what was reported.  Behaviour by requested model:

* ``error-400``: a 400 error body; ``rate-limited``: a 429 every time;
  ``flaky-429``: a 429 on every other request to it (with ``retry-after-ms: 1``);
* with ``tools`` in the request and no tool result yet: a tool call.

A chat stream carries a usage chunk only when asked for
(``stream_options.include_usage``), as the real API does.
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAKE_KEY = "sk-fake-not-a-real-key"
#: Every answer's creation time: two fresh servers give byte-identical answers.
CREATED = 1_790_000_000


@dataclass
class Reported:
    """One usage object the server sent (token counts as the provider reports them)."""

    provider: str
    api: str
    model: str
    prompt: int  # every input token, cached ones included
    completion: int
    cache_read: int = 0
    cache_write: int = 0
    reasoning: int = 0
    embedding: int = 0
    streamed: bool = False

    @property
    def total(self) -> int:
        return self.prompt + self.completion


class FakeModelServer:
    """``with FakeModelServer() as server:`` - a running fake on 127.0.0.1."""

    def __init__(self) -> None:
        self.reported: list[Reported] = []
        self.requests: list[dict[str, Any]] = []
        self._seq = itertools.count(1)
        self._flaky = itertools.count()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------
    def start(self) -> FakeModelServer:
        server = self

        class Handler(_Handler):
            fake = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="fake-model-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def openai_url(self) -> str:
        return self.url + "/v1"

    @property
    def anthropic_url(self) -> str:
        return self.url

    def env(self) -> dict[str, str]:
        """Environment variables that point the SDKs (and frameworks) here."""
        return {
            "OPENAI_BASE_URL": self.openai_url,
            "OPENAI_API_BASE": self.openai_url,
            "OPENAI_API_KEY": FAKE_KEY,
            "ANTHROPIC_BASE_URL": self.anthropic_url,
            "ANTHROPIC_API_KEY": FAKE_KEY,
        }

    def clear(self) -> None:
        with self._lock:
            self.reported.clear()
            self.requests.clear()

    def totals(self) -> dict[str, int]:
        """Summed counts of everything reported (``total`` = prompt + completion)."""
        with self._lock:
            rows = [asdict(r) | {"total": r.total} for r in self.reported]
        keys = ("prompt", "completion", "cache_read", "cache_write", "reasoning", "embedding")
        return {k: sum(r[k] for r in rows) for k in (*keys, "total")}

    # -- answers -------------------------------------------------------------------
    def next_seq(self) -> int:
        return next(self._seq)

    def report(self, item: Reported) -> None:
        with self._lock:
            self.reported.append(item)

    def flaky_fails(self) -> bool:
        return next(self._flaky) % 2 == 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeModelServer

    def setup(self) -> None:
        super().setup()
        # headers and body go out in two writes: without this, Nagle's algorithm and a
        # delayed ACK hold every answer ~40 ms
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        with self.fake._lock:
            self.fake.requests.append({"path": self.path, "body": body})
        model = str(body.get("model") or "")
        anthropic = self.path.startswith("/v1/messages")
        if model == "error-400":
            return self._error(400, "invalid_request_error", anthropic)
        if model == "rate-limited" or (model == "flaky-429" and self.fake.flaky_fails()):
            return self._error(429, "rate_limit_error", anthropic)
        routes = {
            "/v1/chat/completions": self._chat,
            "/v1/completions": self._text,
            "/v1/responses": self._responses,
            "/v1/embeddings": self._embeddings,
            "/v1/messages": self._messages,
        }
        handler = routes.get(self.path.split("?")[0])
        if handler is None:
            return self._json(404, {"error": {"message": "no such route", "type": "not_found"}})
        handler(body, model, self.fake.next_seq())

    # -- plumbing -------------------------------------------------------------------
    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _sse(self, events: list[tuple[str | None, Any]]) -> None:
        parts = []
        for name, payload in events:
            data = payload if isinstance(payload, str) else json.dumps(payload)
            parts.append((f"event: {name}\n" if name else "") + f"data: {data}\n\n")
        raw = "".join(parts).encode()
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _error(self, status: int, kind: str, anthropic: bool) -> None:
        if anthropic:
            payload: dict[str, Any] = {
                "type": "error",
                "error": {"type": kind, "message": f"fake {status}"},
            }
        else:
            payload = {"error": {"message": f"fake {status}", "type": kind, "code": None}}
        self._json(status, payload, {"retry-after-ms": "1", "retry-after": "0"})

    # -- OpenAI --------------------------------------------------------------------------
    @staticmethod
    def _openai_counts(seq: int) -> tuple[int, int, int, int]:
        prompt, completion = 20 + seq, 7 + seq % 5
        return prompt, completion, 4 + seq % 3, 2 + seq % 2  # prompt, completion, cached, reasoning

    def _openai_usage(self, model: str, seq: int, api: str, streamed: bool) -> dict[str, Any]:
        prompt, completion, cached, reasoning = self._openai_counts(seq)
        self.fake.report(
            Reported("openai", api, model, prompt, completion, cached, 1, reasoning, 0, streamed)
        )
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {
                "cached_tokens": cached,
                "cache_write_tokens": 1,
                "audio_tokens": 0,
            },
            "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": 0},
        }

    @staticmethod
    def _wants_tool(body: dict[str, Any]) -> dict[str, Any] | None:
        tools = body.get("tools") or []
        messages = body.get("messages") or []
        if not tools or any(m.get("role") == "tool" for m in messages):
            return None
        first = tools[0]
        return first.get("function", first)

    def _chat(self, body: dict[str, Any], model: str, seq: int) -> None:
        resolved = f"{model}-2026-01-01"
        created = CREATED
        tool = self._wants_tool(body)
        if not body.get("stream"):
            text = f"Answer {seq}."
            if (body.get("response_format") or {}).get("type") == "json_schema":
                text = json.dumps({"answer": text})
            message: dict[str, Any] = {"role": "assistant", "content": text}
            finish = "stop"
            if tool is not None:
                message = {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": f"call_{seq}",
                            "type": "function",
                            "function": {"name": tool["name"], "arguments": '{"city": "Paris"}'},
                        }
                    ],
                }
                finish = "tool_calls"
            return self._json(
                200,
                {
                    "id": f"chatcmpl-{seq}",
                    "object": "chat.completion",
                    "created": created,
                    "model": resolved,
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                    "usage": self._openai_usage(model, seq, "chat", False),
                },
            )
        base = {"id": f"chatcmpl-{seq}", "object": "chat.completion.chunk", "created": created}
        base["model"] = resolved
        chunks: list[tuple[str | None, Any]] = []
        deltas = [
            {"role": "assistant", "content": ""},
            {"content": "Answer "},
            {"content": f"{seq}."},
        ]
        for delta in deltas:
            chunks.append(
                (None, {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
            )
        chunks.append(
            (None, {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        )
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = self._openai_usage(model, seq, "chat", True)
            chunks.append((None, {**base, "choices": [], "usage": usage}))
        chunks.append((None, "[DONE]"))
        self._sse(chunks)

    def _text(self, body: dict[str, Any], model: str, seq: int) -> None:
        self._json(
            200,
            {
                "id": f"cmpl-{seq}",
                "object": "text_completion",
                "created": CREATED,
                "model": model,
                "choices": [{"index": 0, "text": "ok", "finish_reason": "stop", "logprobs": None}],
                "usage": self._openai_usage(model, seq, "text", False),
            },
        )

    def _embeddings(self, body: dict[str, Any], model: str, seq: int) -> None:
        tokens = 5 + seq % 4
        self.fake.report(Reported("openai", "embeddings", model, 0, 0, embedding=tokens))
        self._json(
            200,
            {
                "object": "list",
                "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}],
                "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    def _response_object(self, model: str, seq: int, usage: Any, status: str) -> dict[str, Any]:
        return {
            "id": f"resp_{seq}",
            "object": "response",
            "created_at": CREATED,
            "model": f"{model}-2026-01-01",
            "status": status,
            "output": [
                {
                    "type": "message",
                    "id": f"msg_{seq}",
                    "status": "completed",
                    "role": "assistant",
                    "content": [
                        {"type": "output_text", "text": f"Answer {seq}.", "annotations": []}
                    ],
                }
            ]
            if status == "completed"
            else [],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": usage,
        }

    def _responses_usage(self, model: str, seq: int, streamed: bool) -> dict[str, Any]:
        prompt, completion, cached, reasoning = self._openai_counts(seq)
        self.fake.report(
            Reported(
                "openai", "responses", model, prompt, completion, cached, 1, reasoning, 0, streamed
            )
        )
        return {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 1},
            "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": prompt + completion,
        }

    def _responses(self, body: dict[str, Any], model: str, seq: int) -> None:
        if not body.get("stream"):
            usage = self._responses_usage(model, seq, False)
            return self._json(200, self._response_object(model, seq, usage, "completed"))
        pending = self._response_object(model, seq, None, "in_progress")
        done = self._response_object(
            model, seq, self._responses_usage(model, seq, True), "completed"
        )
        events: list[tuple[str | None, Any]] = [
            (
                "response.created",
                {"type": "response.created", "sequence_number": 0, "response": pending},
            ),
            (
                "response.output_text.delta",
                {
                    "type": "response.output_text.delta",
                    "sequence_number": 1,
                    "item_id": f"msg_{seq}",
                    "output_index": 0,
                    "content_index": 0,
                    "delta": f"Answer {seq}.",
                    "logprobs": [],
                },
            ),
            (
                "response.completed",
                {"type": "response.completed", "sequence_number": 2, "response": done},
            ),
        ]
        self._sse(events)

    # -- Anthropic --------------------------------------------------------------------------
    def _messages(self, body: dict[str, Any], model: str, seq: int) -> None:
        if self.path.startswith("/v1/messages/count_tokens"):
            return self._json(200, {"input_tokens": 10})
        uncached, cache_read, cache_write = 15 + seq, 3 + seq % 2, 2
        output = 9 + seq % 3
        self.fake.report(
            Reported(
                "anthropic",
                "messages",
                model,
                uncached + cache_read + cache_write,
                output,
                cache_read,
                cache_write,
                reasoning=2,
                streamed=bool(body.get("stream")),
            )
        )
        resolved = f"{model}-20260101"
        tools = body.get("tools") or []
        used_tool = any(
            isinstance(m.get("content"), list)
            and any(part.get("type") == "tool_result" for part in m["content"])
            for m in body.get("messages") or []
        )
        content: list[dict[str, Any]] = [{"type": "text", "text": f"Answer {seq}."}]
        stop = "end_turn"
        if tools and not used_tool:
            content = [
                {
                    "type": "tool_use",
                    "id": f"toolu_{seq}",
                    "name": tools[0]["name"],
                    "input": {"city": "Paris"},
                }
            ]
            stop = "tool_use"
        usage = {
            "input_tokens": uncached,
            "output_tokens": output,
            "cache_read_input_tokens": cache_read,
            "cache_creation_input_tokens": cache_write,
            "output_tokens_details": {"thinking_tokens": 2},
        }
        message = {
            "id": f"msg_{seq}",
            "type": "message",
            "role": "assistant",
            "model": resolved,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": usage,
        }
        if not body.get("stream"):
            return self._json(200, message)
        start_usage = {**usage, "output_tokens": 1}
        text = content[0].get("text", "")
        events: list[tuple[str | None, Any]] = [
            (
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        **message,
                        "content": [],
                        "stop_reason": None,
                        "usage": start_usage,
                    },
                },
            ),
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            ),
            ("ping", {"type": "ping"}),
        ]
        for piece in (text[:6], text[6:]):
            events.append(
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": piece},
                    },
                )
            )
        events += [
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": {
                        "output_tokens": output,
                        "output_tokens_details": {"thinking_tokens": 2},
                    },
                },
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
        self._sse(events)
