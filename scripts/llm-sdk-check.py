"""OpenAI's official Python SDK against the LLM gateway: the answers and
the errors must be what the SDK expects from OpenAI's own API.

Usage: llm-sdk-check.py BASE_URL KEY LIMITED_KEY MODEL
(BASE_URL ends in /v1; LIMITED_KEY has a tiny daily token budget.)
Prints one line per check and exits non-zero on the first failure.
"""
import sys

import openai

base, key, limited_key, model = sys.argv[1:5]
client = openai.OpenAI(base_url=base, api_key=key, max_retries=0, timeout=30)
messages = [{"role": "user", "content": "Name a colour."}]


def check(name, condition, detail=""):
    if not condition:
        print(f"FAIL {name}: {detail}")
        sys.exit(1)
    print(f"ok {name}")


ids = [m.id for m in client.models.list().data]
check("models.list", model in ids, ids)

plain = client.chat.completions.create(model=model, messages=messages, max_tokens=8)
check("chat", isinstance(plain.choices[0].message.content, str), plain)
check("chat usage", plain.usage is not None and plain.usage.completion_tokens >= 1, plain.usage)

chunks = list(
    client.chat.completions.create(
        model=model,
        messages=messages,
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
    )
)
text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
check("stream", len(chunks) >= 2 and isinstance(text, str), chunks)
check("stream usage", chunks[-1].usage is not None and chunks[-1].choices == [], chunks[-1])

try:
    client.chat.completions.create(model="no-such-model", messages=messages)
    check("unknown model", False, "no error")
except openai.NotFoundError as e:
    check("unknown model", e.code == "model_not_found" and e.status_code == 404, e.body)

try:
    client.chat.completions.create(model=model, messages=messages, max_tokens=-1)
    check("bad max_tokens", False, "no error")
except openai.BadRequestError as e:
    check("bad max_tokens", e.status_code == 400 and e.param == "max_tokens", e.body)

bad = openai.OpenAI(base_url=base, api_key="rlk_" + "0" * 64, max_retries=0, timeout=30)
try:
    bad.chat.completions.create(model=model, messages=messages)
    check("unknown key", False, "no error")
except openai.AuthenticationError as e:
    check("unknown key", e.status_code == 401 and isinstance(e.message, str), e.body)

limited = openai.OpenAI(base_url=base, api_key=limited_key, max_retries=0, timeout=30)
try:
    for _ in range(20):
        limited.chat.completions.create(model=model, messages=messages, max_tokens=8)
    check("budget", False, "never refused")
except openai.RateLimitError as e:
    retry_after = e.response.headers.get("retry-after")
    check(
        "budget",
        e.code == "budget_exceeded" and "tokens_per_day" in e.message and retry_after,
        e.body,
    )
print("all checks passed")
