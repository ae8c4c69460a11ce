"""The requests `tts serve` takes, parsed by hand: each OpenAI-format body becomes an `Ask`,
and every bad input an `APIError` -- a 4xx in OpenAI's error format (`{"error": {"message",
"type", "param", "code"}}`) -- before anything runs.

Budget rule (small-model token units): `budget` (`extra_body={"budget": N}`) when given; else
for tts-auto `max_tokens` (or `max_completion_tokens`) itself; for a model served directly
`max_tokens` x samples x that model's price per generated token; else the server's
`--default-budget`. Every budget must be a finite number in (0, --max-budget].
"""

import json
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from tts.prompts import ANSWER_INSTRUCTION

AUTO_MODEL = "tts-auto"

# Parameters the routes accept; the rest are refused by name (unsupported) or as unknown.
_COMMON = {"model", "stream", "stream_options", "max_tokens", "temperature", "top_p", "n",
           "seed", "user", "budget", "samples", "strategy", "presence_penalty",
           "frequency_penalty", "metadata", "store", "stop"}
_CHAT = _COMMON | {"messages", "max_completion_tokens", "logprobs"}
_COMPLETIONS = _COMMON | {"prompt", "logprobs"}
_UNSUPPORTED = {"tools", "functions", "tool_choice", "function_call", "response_format",
                "logit_bias", "top_logprobs", "audio", "modalities", "prediction",
                "parallel_tool_calls", "best_of", "echo", "suffix", "web_search_options",
                "reasoning_effort"}
_MAX_SEED = 2**63 - 1
_MAX_SAMPLES = 64


@dataclass
class ServeConfig:
    """Limits and settings of one server."""

    api_key: str | None = None
    max_body_bytes: int = 1 << 20
    max_prompt_chars: int = 32_000
    max_budget: float = 1e9
    default_budget: float = 200_000.0
    max_tokens_cap: int = 1 << 20
    request_timeout: float = 600.0
    max_in_flight: int = 4096
    """Requests being answered at once; more are refused with 429 (server busy)."""
    read_timeout: float = 30.0
    """Seconds a client may take to send its request body (and, under `tts serve`, its
    headers: `tts.serving.protocol`); slower ones get 408 and the connection is closed (a
    trickling client must not hold a connection indefinitely)."""


class APIError(Exception):
    """An error response in OpenAI's format."""

    def __init__(self, status: int, message: str, *, type_: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None,
                 extra: dict[str, Any] | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = \
            status, message, type_, param, code
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code, **self.extra}}


def _bad(message: str, param: str | None = None, code: str = "invalid_value") -> APIError:
    return APIError(400, message, param=param, code=code)


def parse_json(data: bytes) -> Any:
    """The JSON value of a request body; NaN, Infinity, integers of more digits than Python
    converts (4300), bad UTF-8 or syntax are 400s."""
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError too
        raise _bad(f"the body is not valid JSON: {str(exc)[:120]}", None,
                   "invalid_json") from None


def _refuse_constant(name: str):
    raise _bad(f"the body holds {name}, which is not valid JSON (numbers must be finite).",
               None, "invalid_json")


def _number(body: dict, name: str, *, low: float, high: float, integer: bool = False,
            low_open: bool = False) -> float | int | None:
    value = body.get(name)
    if value is None:
        return None
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            (integer and not isinstance(value, int)):
        raise _bad(f"`{name}` must be {kind}, got {type(value).__name__} "
                   f"{json.dumps(value)[:40]}.", name, "invalid_type")
    if isinstance(value, float) and not math.isfinite(value):
        raise _bad(f"`{name}` must be a finite number, got {value!r}.", name)
    if value < low or (low_open and value == low) or value > high:  # ints compared exactly
        lo = f"> {low:g}" if low_open else f">= {low:g}"
        shown = repr(value) if len(repr(value)) <= 40 else \
            f"an integer of {len(repr(value))} digits"
        raise _bad(f"`{name}` must be {lo} and <= {high:g}, got {shown}.", name)
    return value


def _text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content:
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or \
                    not isinstance(part.get("text"), str):
                raise _bad(f"{where} may hold only text parts ({{'type': 'text', 'text': ...}}).",
                           where, "unsupported_content")
            parts.append(part["text"])
        return "".join(parts)
    raise _bad(f"{where} must be a string or a list of text parts, got "
               f"{type(content).__name__}.", where, "invalid_type")


def question_of(text: str) -> str:
    """The question in a user message: the text without a trailing answer instruction (the
    one tts itself adds), so a formatted prompt and a bare question ask the same thing."""
    text = text.strip()
    if text.endswith(ANSWER_INSTRUCTION):
        text = text[: -len(ANSWER_INSTRUCTION)].strip()
    return text


@dataclass
class Ask:
    """A parsed request."""

    model: str
    question: str
    budget: float
    stream: bool
    include_usage: bool
    strategy: Any
    seed: int | None
    notes: list[str]


class RequestParser:
    """Turns request bodies into `Ask`s for one server: its models (name -> role), its limits,
    and each model's price per generated token (for the budget of a model served directly)."""

    def __init__(self, roles: Mapping[str, str], config: ServeConfig,
                 price: Callable[[str], float]):
        self.roles, self.config, self.price = roles, config, price

    @property
    def model_names(self) -> list[str]:
        return [AUTO_MODEL, *self.roles]

    def parse(self, body: Any, *, chat: bool) -> Ask:
        """The request in `body` (a chat or a completions request), or an `APIError` naming
        the first thing wrong with it."""
        cfg = self.config
        if not isinstance(body, dict):
            raise _bad(f"the request body must be a JSON object, got "
                       f"{type(body).__name__}.", None, "invalid_type")
        for key in body:
            if key in _UNSUPPORTED:
                value = body[key]
                if value in (None, False, [], {}) or (key == "response_format" and isinstance(
                        value, dict) and value.get("type") == "text"):
                    continue
                raise _bad(f"parameter `{key}` is not supported by tts serve (it answers with "
                           f"one text answer).", key, "unsupported_parameter")
            if key not in (_CHAT if chat else _COMPLETIONS):
                raise _bad(f"unknown parameter `{str(key)[:60]}`.", str(key)[:60],
                           "unknown_parameter")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _bad("`model` is required: a string, e.g. 'tts-auto'.", "model",
                       "invalid_type" if "model" in body else "missing_parameter")
        if model != AUTO_MODEL and model not in self.roles:
            raise APIError(404, f"model {model[:80]!r} does not exist; this server has "
                                f"{self.model_names}.", param="model", code="model_not_found")
        question = self._question(body, chat)
        if len(question) > cfg.max_prompt_chars:
            raise _bad(f"the prompt is {len(question)} characters; this server takes at most "
                       f"{cfg.max_prompt_chars}.", "messages" if chat else "prompt",
                       "prompt_too_long")
        n = _number(body, "n", low=1, high=1e9, integer=True)
        if n not in (None, 1):
            raise _bad(f"`n` must be 1 (tts returns one answer per request), got {n}.", "n",
                       "unsupported_parameter")
        logprobs = body.get("logprobs")
        if logprobs not in (None, False, 0):
            raise _bad("`logprobs` is not supported by tts serve.", "logprobs",
                       "unsupported_parameter")
        stop = body.get("stop")
        if stop not in (None, [], ""):
            raise _bad("`stop` is not supported: tts decides where each sample stops.", "stop",
                       "unsupported_parameter")
        stream = body.get("stream")
        if stream is not None and not isinstance(stream, bool):
            raise _bad("`stream` must be true or false.", "stream", "invalid_type")
        options = body.get("stream_options")
        include_usage = False
        if options is not None:
            if not isinstance(options, dict) or not set(options) <= {"include_usage"}:
                raise _bad("`stream_options` must be an object with `include_usage`.",
                           "stream_options", "invalid_type")
            include_usage = bool(options.get("include_usage"))
        _number(body, "top_p", low=0, high=1)
        for name in ("presence_penalty", "frequency_penalty"):
            if _number(body, name, low=-2, high=2) not in (None, 0):
                raise _bad(f"`{name}` is not supported by tts serve.", name,
                           "unsupported_parameter")
        temperature = _number(body, "temperature", low=0, high=2)
        seed = _number(body, "seed", low=0, high=_MAX_SEED, integer=True)
        max_tokens = _number(body, "max_tokens", low=1, high=cfg.max_tokens_cap, integer=True)
        if chat:
            mct = _number(body, "max_completion_tokens", low=1, high=cfg.max_tokens_cap,
                          integer=True)
            max_tokens = max_tokens if max_tokens is not None else mct
        samples = _number(body, "samples", low=1, high=_MAX_SAMPLES, integer=True)
        budget = _number(body, "budget", low=0, high=cfg.max_budget, low_open=True)
        name = body.get("strategy")
        notes: list[str] = []
        if model == AUTO_MODEL:
            if samples is not None:
                raise _bad("`samples` applies to a model served directly, not tts-auto.",
                           "samples", "unsupported_parameter")
            if name is not None:
                from tts.strategies import REGISTRY

                if not isinstance(name, str) or name not in REGISTRY:
                    raise _bad(f"`strategy` must be one of {sorted(REGISTRY)}, got "
                               f"{json.dumps(name)[:60]}.", "strategy")
            strategy = name
            if temperature is not None:
                notes.append("temperature is chosen by the plan; the request's is ignored")
            if budget is None:
                budget = float(max_tokens) if max_tokens is not None else cfg.default_budget
        else:
            if name is not None:
                raise _bad("`strategy` applies to tts-auto only.", "strategy",
                           "unsupported_parameter")
            strategy, budget = self._direct(model, temperature, samples, max_tokens, budget)
        if budget > cfg.max_budget:
            raise _bad(f"the budget derived from max_tokens ({budget:g}) is above this server's "
                       f"cap {cfg.max_budget:g}; lower max_tokens or pass `budget`.", "max_tokens")
        return Ask(model, question, float(budget), bool(stream), include_usage, strategy,
                   seed, notes)

    def _question(self, body: dict, chat: bool) -> str:
        if chat:
            messages = body.get("messages")
            if messages is None:
                raise _bad("`messages` is required: a list with one user message.", "messages",
                           "missing_parameter")
            if not isinstance(messages, list) or not messages:
                raise _bad("`messages` must be a non-empty list of messages.", "messages",
                           "invalid_type")
            user = []
            for i, m in enumerate(messages):
                if not isinstance(m, dict):
                    raise _bad(f"messages[{i}] must be an object with `role` and `content`.",
                               f"messages[{i}]", "invalid_type")
                role = m.get("role")
                if role not in ("system", "developer", "user", "assistant", "tool"):
                    raise _bad(f"messages[{i}].role must be 'system', 'developer' or 'user', "
                               f"got {json.dumps(role)[:40]}.", f"messages[{i}].role")
                if role in ("assistant", "tool"):
                    raise _bad("tts serve answers one question: send a single user message "
                               "(optionally after a system message), not a conversation.",
                               f"messages[{i}]", "unsupported_conversation")
                if "content" not in m:
                    raise _bad(f"messages[{i}] has no `content`.", f"messages[{i}].content",
                               "missing_parameter")
                text = _text(m["content"], f"messages[{i}].content")
                if role == "user":
                    user.append(text)
            if len(user) != 1:
                raise _bad(f"send exactly one user message (the question), got {len(user)}.",
                           "messages", "unsupported_conversation")
            raw = user[0]
        else:
            prompt = body.get("prompt")
            if prompt is None:
                raise _bad("`prompt` is required: the question as a string.", "prompt",
                           "missing_parameter")
            if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
                prompt = prompt[0]
            if not isinstance(prompt, str):
                raise _bad("`prompt` must be one string (token ids and several prompts are not "
                           "supported).", "prompt", "invalid_type")
            raw = prompt
        question = question_of(raw)
        if not question:
            raise _bad("the question is empty.", "messages" if chat else "prompt")
        if "\x00" in question:
            raise _bad("the question contains a NUL character.", "messages" if chat
                       else "prompt")
        return question

    def _direct(self, model: str, temperature, samples, max_tokens, budget):
        from tts.strategies import Vote

        role = self.roles[model]
        samples = samples or 1
        temperature = 0.7 if temperature is None else float(temperature)
        if temperature == 0 and samples != 1:
            raise _bad("greedy decoding (temperature 0) gives one sample; set samples to 1 or "
                       "raise the temperature.", "samples")
        per = int(max_tokens) if max_tokens is not None else 512
        strategy = Vote(max_samples=samples, wave=samples, max_tokens=per,
                        temperature=temperature, confidence=1.0, role=role)
        if budget is None:
            budget = max(per * samples * self.price(model), 1e-9)
        return strategy, budget
