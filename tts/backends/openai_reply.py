"""Reading the replies of an OpenAI-compatible server, which is untrusted.

Every field tts uses is checked before it becomes a Completion: the body must be UTF-8 JSON
(of bounded size), a chat completion an object whose `choices` are objects with a string (or
null) `message.content`, whose token logprobs are finite numbers, and whose `usage` counts are
integers (a float would be truncated, Infinity would overflow). Anything else is a
BackendError naming the server and what was wrong, never a Python exception from deep inside.
"""

from __future__ import annotations

import json
import math
import numbers
from typing import Any

from tts.backends.contract import check_count
from tts.errors import BackendError
from tts.types import Completion, GenRequest

__all__ = ["MAX_REPLY_BYTES", "chat_completions", "decode_json", "error_detail", "read_body"]

MAX_REPLY_BYTES = 64 << 20
"""Largest reply body read; a server sending more is broken (a chat reply of 64 MiB would be
millions of tokens)."""


def read_body(response: Any, where: str) -> bytes:
    """At most MAX_REPLY_BYTES of an HTTP response's body, or BackendError."""
    raw = response.read(MAX_REPLY_BYTES + 1)
    if len(raw) > MAX_REPLY_BYTES:
        raise BackendError(f"{where} answered with more than {MAX_REPLY_BYTES >> 20} MiB; "
                           f"a reply that large is not a chat completion.")
    return raw


def decode_json(raw: bytes, where: str) -> Any:
    """The JSON value of a reply body: BackendError when it is not UTF-8 or not JSON."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BackendError(f"{where} answered with a body that is not UTF-8 (byte "
                           f"{raw[exc.start:exc.start + 1]!r} at offset {exc.start}).") from None
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise BackendError(f"{where} did not answer with JSON: {str(exc)[:120]}") from None


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def chat_completions(reply: Any, req: GenRequest, n: int, where: str) -> list[Completion]:
    """The `n` samples of a chat completion `reply` to request `req` (n=1 per sample, or n
    choices counted by their logprobs), or BackendError naming what was wrong."""
    from tts.answers import extract_answer

    def bad(what: str) -> BackendError:
        return BackendError(f"{where} sent a malformed chat completion: {what}.")

    if not isinstance(reply, dict):
        raise bad(f"the reply is {type(reply).__name__} {_show(reply)}, not a JSON object")
    choices, usage = reply.get("choices"), reply.get("usage")
    if not isinstance(choices, list):
        raise bad(f"`choices` is {type(choices).__name__} {_show(choices)}, not a list")
    if len(choices) != n:
        raise bad(f"{len(choices)} choices for n={n}")
    for k, choice in enumerate(choices):
        if not isinstance(choice, dict):
            raise bad(f"choices[{k}] is {type(choice).__name__} {_show(choice)}, not an object")
        index = choice.get("index", k)
        if isinstance(index, bool) or not isinstance(index, int):
            raise bad(f"choices[{k}].index is {_show(index)}, not an integer")
    choices = sorted(choices, key=lambda c: c.get("index", 0))
    if not isinstance(usage, dict):
        raise bad(f"`usage` is {type(usage).__name__} {_show(usage)}, not an object with token "
                  f"counts")
    prompt_tokens = check_count(usage.get("prompt_tokens"),
                                f"{where} answered usage.prompt_tokens")
    total = check_count(usage.get("completion_tokens"),
                        f"{where} answered usage.completion_tokens")
    logprobs = [_token_logprobs(c, k, bad) for k, c in enumerate(choices)]
    if n == 1:
        counts = [total]
    elif all(lp is not None for lp in logprobs) \
            and sum(len(lp) for lp in logprobs) == total:  # type: ignore[arg-type]
        counts = [len(lp) for lp in logprobs]  # type: ignore[arg-type]
    else:
        raise BackendError(f"{where} gave no per-choice token counts for n={n} (usage counts "
                           f"all choices together); use per_sample=True.")
    result = []
    for k, (choice, tokens, lp) in enumerate(zip(choices, counts, logprobs)):
        if tokens > req.max_tokens:
            raise BackendError(f"{where} generated {tokens} tokens for max_tokens="
                               f"{req.max_tokens}; it does not honour the limit.")
        message = choice.get("message")
        if message is None:
            message = {}
        if not isinstance(message, dict):
            raise bad(f"choices[{k}].message is {type(message).__name__} {_show(message)}, not "
                      f"an object")
        text = message.get("content")
        if text is not None and not isinstance(text, str):
            raise bad(f"choices[{k}].message.content is {type(text).__name__} {_show(text)}, "
                      f"not a string")
        text = text or ""
        reason = choice.get("finish_reason")
        mean = sum(lp) / len(lp) if req.logprobs and lp else None
        result.append(Completion(
            text=text, answer=extract_answer(req.assistant_prefix + text), tokens=tokens,
            finish_reason=reason if reason in ("stop", "length") else "error",
            prompt_tokens=prompt_tokens, mean_logprob=mean))
    return result


def _token_logprobs(choice: dict[str, Any], k: int, bad) -> list[float] | None:
    """The logprob of each generated token of a choice, None when the reply holds none."""
    holder = choice.get("logprobs")
    if holder is None:
        return None
    if not isinstance(holder, dict):
        raise bad(f"choices[{k}].logprobs is {type(holder).__name__}, not an object")
    content = holder.get("content")
    if content is None:
        return None
    if not isinstance(content, list):
        raise bad(f"choices[{k}].logprobs.content is {type(content).__name__}, not a list")
    out = []
    for t, token in enumerate(content):
        if not isinstance(token, dict):
            raise bad(f"choices[{k}].logprobs.content[{t}] is {type(token).__name__}, not an "
                      f"object")
        value = token.get("logprob")
        if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                or not math.isfinite(value):
            raise bad(f"choices[{k}].logprobs.content[{t}].logprob is {_show(value)}, not a "
                      f"finite number")
        out.append(float(value))
    return out


def error_detail(raw: bytes, fallback: str) -> str:
    """The message of an error reply's body (OpenAI's `{"error": {"message": ...}}` or the
    text), at most 500 characters; `fallback` when the body is empty."""
    text = raw.decode(errors="replace")
    try:
        err = json.loads(text)
    except (ValueError, RecursionError):
        return text[:500] or fallback
    if isinstance(err, dict):
        inner = err.get("error", err)
        if isinstance(inner, dict):
            return str(inner.get("message", inner))[:500]
        return str(inner)[:500]
    return text[:500] or fallback
