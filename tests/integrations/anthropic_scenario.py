"""The Anthropic calls every capture test makes, sync and async, and what the caller saw."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
from fake_model_server import FAKE_KEY
from openai_scenario import dump, observe_error

MESSAGES = [{"role": "user", "content": "What is the weather?"}]
CALLS = 8
FAILED = 2


def run_sync(base_url: str) -> list[Any]:
    client = anthropic.Anthropic(base_url=base_url, api_key=FAKE_KEY, max_retries=0)
    retrying = anthropic.Anthropic(base_url=base_url, api_key=FAKE_KEY, max_retries=2)
    messages = client.messages
    seen: list[Any] = []
    seen.append(dump(messages.create(model="claude-test", max_tokens=64, messages=MESSAGES)))
    events = messages.create(model="claude-test", max_tokens=64, messages=MESSAGES, stream=True)
    seen.append([dump(e) for e in events])
    with messages.stream(model="claude-test", max_tokens=64, messages=MESSAGES) as stream:
        seen.append([[e.type for e in stream], dump(stream.get_final_message())])
    with messages.stream(model="claude-test", max_tokens=64, messages=MESSAGES) as stream:
        seen.append(stream.get_final_text())
    raw = messages.with_raw_response.create(model="claude-test", max_tokens=64, messages=MESSAGES)
    seen.append([raw.http_response.status_code, dump(raw.parse())])
    seen.append(dump(retrying.messages.create(model="flaky-429", max_tokens=64, messages=MESSAGES)))
    for model in ("error-400", "rate-limited"):
        try:
            messages.create(model=model, max_tokens=64, messages=MESSAGES)
        except anthropic.APIStatusError as exc:
            seen.append(observe_error(exc))
    client.close()
    retrying.close()
    return seen


async def run_async(base_url: str) -> list[Any]:
    # Built off the loop: a client's TLS context takes long enough to trip the blocking check.
    client, retrying = await asyncio.to_thread(
        lambda: (
            anthropic.AsyncAnthropic(base_url=base_url, api_key=FAKE_KEY, max_retries=0),
            anthropic.AsyncAnthropic(base_url=base_url, api_key=FAKE_KEY, max_retries=2),
        )
    )
    messages = client.messages
    seen: list[Any] = []
    seen.append(dump(await messages.create(model="claude-test", max_tokens=64, messages=MESSAGES)))
    events = await messages.create(
        model="claude-test", max_tokens=64, messages=MESSAGES, stream=True
    )
    seen.append([dump(e) async for e in events])
    async with messages.stream(model="claude-test", max_tokens=64, messages=MESSAGES) as stream:
        seen.append([[e.type async for e in stream], dump(await stream.get_final_message())])
    async with messages.stream(model="claude-test", max_tokens=64, messages=MESSAGES) as stream:
        seen.append(await stream.get_final_text())
    raw = await messages.with_raw_response.create(
        model="claude-test", max_tokens=64, messages=MESSAGES
    )
    seen.append([raw.http_response.status_code, dump(await raw.parse())])
    seen.append(
        dump(await retrying.messages.create(model="flaky-429", max_tokens=64, messages=MESSAGES))
    )
    for model in ("error-400", "rate-limited"):
        try:
            await messages.create(model=model, max_tokens=64, messages=MESSAGES)
        except anthropic.APIStatusError as exc:
            seen.append(observe_error(exc))
    await client.close()
    await retrying.close()
    return seen
