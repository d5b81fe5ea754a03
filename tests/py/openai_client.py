"""Drives `lav serve` with the official OpenAI Python client (pinned in
requirements.txt): a chat, the same chat streamed, a completion with n=2, a stream
with usage, and an unknown model. Prints one JSON object for the Rust test to check.

usage: openai_client.py BASE_URL MODEL
"""

import json
import sys

import openai

base, model = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base + "/v1", api_key="not-needed", max_retries=0)
messages = [{"role": "user", "content": "Name three colours of the rainbow."}]
out = {}

r = client.chat.completions.create(
    model=model, messages=messages, temperature=0, max_tokens=24
)
out["chat"] = {
    "text": r.choices[0].message.content,
    "role": r.choices[0].message.role,
    "finish": r.choices[0].finish_reason,
    "usage": r.usage.model_dump(),
    "object": r.object,
}

text, finish, roles = "", None, []
for chunk in client.chat.completions.create(
    model=model, messages=messages, temperature=0, max_tokens=24, stream=True
):
    for c in chunk.choices:
        if c.delta.role:
            roles.append(c.delta.role)
        text += c.delta.content or ""
        finish = c.finish_reason or finish
out["stream"] = {"text": text, "finish": finish, "roles": roles}

r = client.completions.create(
    model=model,
    prompt="The weather today is",
    n=2,
    temperature=0.9,
    seed=7,
    max_tokens=12,
    extra_body={"ignore_eos": True},
)
out["n2"] = {
    "texts": [c.text for c in sorted(r.choices, key=lambda c: c.index)],
    "finish": [c.finish_reason for c in r.choices],
    "usage": r.usage.model_dump(),
}

pieces, usage = [], None
for chunk in client.completions.create(
    model=model,
    prompt="Once upon a time",
    max_tokens=8,
    temperature=0,
    stream=True,
    stream_options={"include_usage": True},
):
    for c in chunk.choices:
        pieces.append(c.text)
    if chunk.usage:
        usage = chunk.usage.model_dump()
out["completion_stream"] = {"text": "".join(pieces), "usage": usage}

try:
    client.chat.completions.create(model="no-such-model", messages=messages)
    out["unknown_model"] = None
except openai.NotFoundError as e:
    out["unknown_model"] = e.status_code

print(json.dumps(out))
