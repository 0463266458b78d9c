"""The model calls both clients capture in the capture comparison (openai + anthropic only).

Imported by ``v014_capture_scenario.py`` inside the published client's virtualenv and
by ``test_capture_compat.py`` in ours, so both make exactly the same calls.
"""

from __future__ import annotations

import anthropic
import openai

KEY = "sk-fake-not-a-real-key"
CONVERSATION_ID = "capture-compare"
MESSAGES = [{"role": "user", "content": "Where is my order?"}]
#: Calls made (each one captured model call).
CALLS = 6


def run(openai_url: str, anthropic_url: str) -> None:
    oa = openai.OpenAI(base_url=openai_url, api_key=KEY, max_retries=0)
    oa.chat.completions.create(model="gpt-test", messages=MESSAGES)
    for _ in oa.chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True):
        pass
    oa.responses.create(model="gpt-test", input="Where is my order?")
    oa.chat.completions.with_raw_response.create(model="gpt-test", messages=MESSAGES).parse()
    an = anthropic.Anthropic(base_url=anthropic_url, api_key=KEY, max_retries=0)
    an.messages.create(model="claude-test", max_tokens=64, messages=MESSAGES)
    with an.messages.stream(model="claude-test", max_tokens=64, messages=MESSAGES) as stream:
        stream.get_final_text()
