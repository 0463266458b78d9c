"""The OpenAI calls every capture test makes, sync and async, and what the caller saw.

Each step returns an observation of what the caller got - the returned object
dumped, every streamed item dumped in order, or the exception's type and
status - so a patched run can be compared with an unpatched one.
"""

from __future__ import annotations

import asyncio
from typing import Any

import openai
from fake_model_server import FAKE_KEY
from pydantic import BaseModel

MESSAGES = [{"role": "user", "content": "What is the weather?"}]
#: Captured calls per scenario run (each step is one model call), and how many failed.
CALLS = 13
FAILED = 2


class Answer(BaseModel):
    answer: str


def dump(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", warnings=False)
    return repr(value)


def observe_error(exc: Exception) -> tuple[str, str, Any]:
    return ("raised", type(exc).__name__, getattr(exc, "status_code", None))


def clients(base_url: str) -> tuple[openai.OpenAI, openai.OpenAI]:
    """A client, and one that retries a 429 (the other never retries)."""
    return (
        openai.OpenAI(base_url=base_url, api_key=FAKE_KEY, max_retries=0),
        openai.OpenAI(base_url=base_url, api_key=FAKE_KEY, max_retries=2),
    )


def run_sync(base_url: str) -> list[Any]:
    client, retrying = clients(base_url)
    chat = client.chat.completions
    seen: list[Any] = []
    seen.append(dump(chat.create(model="gpt-test", messages=MESSAGES)))
    seen.append([dump(c) for c in chat.create(model="gpt-test", messages=MESSAGES, stream=True)])
    seen.append(
        [
            dump(c)
            for c in chat.create(
                model="gpt-test",
                messages=MESSAGES,
                stream=True,
                stream_options={"include_usage": True},
            )
        ]
    )
    seen.append(dump(chat.parse(model="gpt-test", messages=MESSAGES, response_format=Answer)))
    with chat.stream(model="gpt-test", messages=MESSAGES) as stream:
        events = [e.type for e in stream]
        seen.append([events, dump(stream.get_final_completion())])
    seen.append(dump(client.responses.create(model="gpt-test", input="hi")))
    seen.append(
        [dump(e) for e in client.responses.create(model="gpt-test", input="hi", stream=True)]
    )
    raw = chat.with_raw_response.create(model="gpt-test", messages=MESSAGES)
    seen.append([raw.http_response.status_code, dump(raw.parse())])
    seen.append(dump(client.embeddings.create(model="embed-test", input="hi")))
    seen.append(dump(client.completions.create(model="text-test", prompt="hi")))
    try:
        chat.create(model="error-400", messages=MESSAGES)
    except openai.BadRequestError as exc:
        seen.append(observe_error(exc))
    seen.append(dump(retrying.chat.completions.create(model="flaky-429", messages=MESSAGES)))
    try:
        chat.create(model="rate-limited", messages=MESSAGES)
    except openai.RateLimitError as exc:
        seen.append(observe_error(exc))
    client.close()
    retrying.close()
    return seen


async def run_async(base_url: str) -> list[Any]:
    # Built off the loop: a client's TLS context takes long enough to trip the blocking check.
    client, retrying = await asyncio.to_thread(
        lambda: (
            openai.AsyncOpenAI(base_url=base_url, api_key=FAKE_KEY, max_retries=0),
            openai.AsyncOpenAI(base_url=base_url, api_key=FAKE_KEY, max_retries=2),
        )
    )
    chat = client.chat.completions
    seen: list[Any] = []
    seen.append(dump(await chat.create(model="gpt-test", messages=MESSAGES)))
    stream = await chat.create(model="gpt-test", messages=MESSAGES, stream=True)
    seen.append([dump(c) async for c in stream])
    stream = await chat.create(
        model="gpt-test", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    seen.append([dump(c) async for c in stream])
    seen.append(dump(await chat.parse(model="gpt-test", messages=MESSAGES, response_format=Answer)))
    async with chat.stream(model="gpt-test", messages=MESSAGES) as helper:
        events = [e.type async for e in helper]
        seen.append([events, dump(await helper.get_final_completion())])
    seen.append(dump(await client.responses.create(model="gpt-test", input="hi")))
    events_stream = await client.responses.create(model="gpt-test", input="hi", stream=True)
    seen.append([dump(e) async for e in events_stream])
    raw = await chat.with_raw_response.create(model="gpt-test", messages=MESSAGES)
    seen.append([raw.http_response.status_code, dump(raw.parse())])
    seen.append(dump(await client.embeddings.create(model="embed-test", input="hi")))
    seen.append(dump(await client.completions.create(model="text-test", prompt="hi")))
    try:
        await chat.create(model="error-400", messages=MESSAGES)
    except openai.BadRequestError as exc:
        seen.append(observe_error(exc))
    seen.append(dump(await retrying.chat.completions.create(model="flaky-429", messages=MESSAGES)))
    try:
        await chat.create(model="rate-limited", messages=MESSAGES)
    except openai.RateLimitError as exc:
        seen.append(observe_error(exc))
    await client.close()
    await retrying.close()
    return seen
