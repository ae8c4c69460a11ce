"""The OpenAI-compatible FastAPI app of `tts serve`.

Routes: POST /v1/chat/completions and /v1/completions, GET /v1/models, /health and /metrics.
Model "tts-auto" runs the policy (or `strategy` when given); an underlying model's name runs a
plain vote of `samples` (default 1) samples of that tier (greedy at temperature 0).

Budget rule (small-model token units): `budget` (`extra_body={"budget": N}`) when given; else
for tts-auto `max_tokens` (or `max_completion_tokens`) itself; for a model served directly
`max_tokens` x samples x that model's price per generated token; else the server's
`--default-budget`. Every budget must be a finite number in (0, --max-budget].

The response's `usage` counts tokens the backends processed (prompt) and generated (all models,
all samples); the extra top-level field `tts` holds the status, answer, plan, tokens per model,
cost, budget, escalated, votes and trace. The answer text (`message.content`) is only the
answer (or, for a model served directly, the text of the sample that gave it).

Everything a client sends is parsed by hand from a size-capped body, so every bad input gets a
4xx in OpenAI's error format (`{"error": {"message", "type", "param", "code"}}`).
"""


import asyncio
import hmac
import json
import math
import secrets
import time
from dataclasses import dataclass
from typing import Any

from tts.errors import BankError, TTSError, UnknownNameError, ValidationError
from tts.prompts import ANSWER_INSTRUCTION
from tts.serving.scheduler import Scheduler, ServeError, Served

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


class Metrics:
    """Prometheus metrics of one app (its own registry, so several apps can coexist)."""

    def __init__(self, scheduler: Scheduler, loads: dict[str, int] | None = None):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("tts_requests", "Requests by route, model and HTTP status",
                                ["route", "model", "status"], registry=r)
        self.tokens = Counter("tts_tokens", "Tokens charged per underlying model", ["model"],
                              registry=r)
        self.units = Counter("tts_spent_units", "Budget units spent", registry=r)
        self.escalations = Counter("tts_escalations", "Requests that escalated", registry=r)
        self.latency = Histogram(
            "tts_request_latency_seconds", "Request latency (answered requests)", ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=r)
        self.batches = Counter("tts_batches", "Generate batches per model", ["model"],
                               registry=r)
        self.batch_size = Histogram("tts_batch_size", "Steps per generate batch", ["model"],
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=r)
        in_flight = Gauge("tts_in_flight", "Requests being answered", registry=r)
        in_flight.set_function(lambda: scheduler.in_flight)
        if loads is not None:
            built = Gauge("tts_model_loads", "Engine builds per live model (stays 1: models "
                          "stay loaded)", ["model"], registry=r)
            for backend in scheduler.engine.backends.values():
                if hasattr(backend, "loaded"):
                    built.labels(backend.model).set_function(
                        lambda m=backend.model: loads.get(m, 0))

    def on_batch(self, model: str, size: int, seconds: float) -> None:
        self.batches.labels(model).inc()
        self.batch_size.labels(model).observe(size)


# ---- parsing ----------------------------------------------------------------------------
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
    if not math.isfinite(value):
        raise _bad(f"`{name}` must be a finite number, got {value!r}.", name)
    if value < low or (low_open and value == low) or value > high:
        lo = f"> {low:g}" if low_open else f">= {low:g}"
        raise _bad(f"`{name}` must be {lo} and <= {high:g}, got {value!r}.", name)
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


class App:
    """Holds the scheduler, limits and metrics; builds the FastAPI app."""

    def __init__(self, scheduler: Scheduler, config: ServeConfig | None = None,
                 loads: dict[str, int] | None = None):
        self.scheduler = scheduler
        self.loads = loads if loads is not None else {}
        """Engine builds per live model so far (filled by the CLI's load callback)."""
        self.config = config or ServeConfig()
        self.metrics = Metrics(scheduler, self.loads)
        scheduler.on_batch = self.metrics.on_batch
        self.roles = {b.model: role for role, b in scheduler.engine.backends.items()}
        self.started = time.time()
        self.active = 0

    @property
    def model_names(self) -> list[str]:
        return [AUTO_MODEL, *self.roles]

    # ---- request parsing ---------------------------------------------------------------
    def parse(self, body: Any, *, chat: bool) -> Ask:
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
            price = self.scheduler.engine.cost.of(model).output
            budget = max(per * samples * price, 1e-9)
        return strategy, budget

    # ---- responses ---------------------------------------------------------------------
    def tts_field(self, served: Served, ask: Ask) -> dict[str, Any]:
        r = served.result
        return {"status": r.status, "answer": r.answer,
                "plan": {"strategy": r.plan.strategy, "options": dict(r.plan.options)},
                "tokens": dict(r.tokens), "cost": r.cost, "budget": r.budget,
                "escalated": r.escalated, "votes": dict(r.votes), "difficulty": r.difficulty,
                "seconds": r.seconds, "batches": served.batches, "trace": list(r.trace),
                "notes": ask.notes}

    @staticmethod
    def content(served: Served, ask: Ask) -> tuple[str, str]:
        r = served.result
        if r.status == "insufficient_budget":
            return "", "length"
        if ask.model != AUTO_MODEL and served.text:
            return served.text, "stop"
        return r.answer or "", "stop"


def create_app(scheduler: Scheduler, config: ServeConfig | None = None, *,
               loads: dict[str, int] | None = None):
    """The FastAPI app serving `scheduler` (see the module docstring); `loads` counts engine
    builds per live model (shown in /v1/models and /metrics)."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response, StreamingResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    state = App(scheduler, config, loads)
    cfg = state.config
    app = FastAPI(title="tts serve", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.tts = state

    def error_response(err: APIError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
        return JSONResponse(err.body(), status_code=err.status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(APIError(exc.status_code, f"{request.method} "
                                       f"{request.url.path[:100]}: {exc.detail}", code=kind))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):
        return error_response(APIError(500, f"internal error: {type(exc).__name__}",
                                       type_="server_error", code="internal_error"))

    if cfg.api_key is not None:
        app.add_middleware(_Auth, key=cfg.api_key, deny=lambda: error_response(APIError(
            401, "missing or wrong API key: send `Authorization: Bearer <key>`.",
            code="invalid_api_key")))

    async def read_json(request: Request) -> Any:
        length = request.headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                raise _bad("bad Content-Length header.", None, "invalid_request")
            if int(length) > cfg.max_body_bytes:
                raise APIError(413, f"the request body is {int(length)} bytes; this server "
                                    f"takes at most {cfg.max_body_bytes}.",
                               code="request_too_large")
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > cfg.max_body_bytes:
                raise APIError(413, f"the request body is over {cfg.max_body_bytes} bytes.",
                               code="request_too_large")
        ctype = request.headers.get("content-type", "application/json").split(";")[0].strip()
        if ctype and ctype != "application/json":
            raise APIError(415, f"the body must be application/json, got {ctype[:60]!r}.",
                           code="unsupported_media_type")
        try:
            return json.loads(bytes(data).decode("utf-8"),
                              parse_constant=lambda c: _raise_constant(c))
        except APIError:
            raise
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise _bad(f"the body is not valid JSON: {str(exc)[:120]}", None,
                       "invalid_json") from None

    async def run(ask: Ask) -> Served:
        try:
            future = scheduler.submit(ask.question, ask.budget, strategy=ask.strategy,
                                      seed=ask.seed)
        except (BankError, UnknownNameError, ValidationError) as exc:
            code = "question_not_in_bank" if isinstance(exc, BankError) else "invalid_value"
            raise _bad(str(exc), getattr(exc, "parameter", None), code) from None
        except ServeError as exc:
            raise APIError(exc.status, str(exc), type_="server_error",
                           code="unavailable") from None
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)),
                                          cfg.request_timeout)
        except asyncio.TimeoutError:
            future.cancel()
            ledger = future.ledger
            raise APIError(504, f"no answer within {cfg.request_timeout:g} s (tokens "
                                f"already spent: {ledger.spent:g} units "
                                f"{dict(ledger.tokens)}).", type_="server_error",
                           code="timeout", extra={"spent": ledger.spent,
                                                  "tokens": dict(ledger.tokens)})
        except asyncio.CancelledError:
            future.cancel()
            raise
        except ServeError as exc:
            raise APIError(exc.status, str(exc), type_="server_error",
                           code="backend_timeout" if exc.status == 504 else
                           "backend_unavailable",
                           extra={"spent": exc.spent, "tokens": exc.tokens}) from None
        except TTSError as exc:
            raise APIError(503, str(exc), type_="server_error", code="backend_error") \
                from None

    async def answer(request: Request, chat: bool, route: str):
        start = time.perf_counter()
        model_label = "?"
        try:
            ask = state.parse(await read_json(request), chat=chat)
            model_label = ask.model
            if state.active >= cfg.max_in_flight:
                raise APIError(429, f"the server is busy ({state.active} requests in flight, "
                                    f"limit {cfg.max_in_flight}); retry later.",
                               type_="server_error", code="server_busy")
            state.active += 1
            try:
                served = await run(ask)
            finally:
                state.active -= 1
        except APIError as err:
            state.metrics.requests.labels(route, model_label, str(err.status)).inc()
            return error_response(err)
        r = served.result
        m = state.metrics
        m.requests.labels(route, ask.model, "200").inc()
        m.latency.labels(route).observe(time.perf_counter() - start)
        for name, count in r.tokens.items():
            m.tokens.labels(name).inc(count)
        m.units.inc(r.cost)
        if r.escalated:
            m.escalations.inc()
        content, finish = state.content(served, ask)
        rid = ("chatcmpl-" if chat else "cmpl-") + secrets.token_hex(12)
        created = int(time.time())
        usage = {"prompt_tokens": served.prompt_tokens, "completion_tokens": served.generated,
                 "total_tokens": served.prompt_tokens + served.generated}
        extra = state.tts_field(served, ask)
        if not ask.stream:
            choice = ({"index": 0, "message": {"role": "assistant", "content": content},
                       "finish_reason": finish, "logprobs": None} if chat else
                      {"index": 0, "text": content, "finish_reason": finish, "logprobs": None})
            return JSONResponse({"id": rid, "object": "chat.completion" if chat
                                 else "text_completion", "created": created,
                                 "model": ask.model, "choices": [choice], "usage": usage,
                                 "tts": extra})
        obj = "chat.completion.chunk" if chat else "text_completion"

        def chunk(delta: dict | None, finish_reason=None, **more) -> str:
            if chat:
                choices = [] if delta is None else [
                    {"index": 0, "delta": delta, "finish_reason": finish_reason,
                     "logprobs": None}]
            else:
                choices = [] if delta is None else [
                    {"index": 0, "text": delta.get("content", ""),
                     "finish_reason": finish_reason, "logprobs": None}]
            payload = {"id": rid, "object": obj, "created": created, "model": ask.model,
                       "choices": choices, **more}
            return f"data: {json.dumps(payload)}\n\n"

        def events():
            if chat:
                yield chunk({"role": "assistant", "content": ""})
            for i in range(0, len(content), 16):
                yield chunk({"content": content[i:i + 16]})
            yield chunk({}, finish, tts=extra)
            if ask.include_usage:
                yield chunk(None, usage=usage)
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    # Plain Starlette routes (the body is parsed by hand anyway): FastAPI's per-request
    # dependency and response-model machinery cost more CPU than a replayed answer.
    async def chat_completions(request: Request):
        return await answer(request, True, "chat")

    async def completions(request: Request):
        return await answer(request, False, "completions")

    app.add_route("/v1/chat/completions", chat_completions, methods=["POST"])
    app.add_route("/v1/completions", completions, methods=["POST"])

    @app.get("/v1/models")
    async def list_models():
        engine = scheduler.engine
        data = [{"id": AUTO_MODEL, "object": "model", "created": int(state.started),
                 "owned_by": "tts", "tts": {"kind": "policy", "ladder": list(state.roles)}}]
        for model, role in state.roles.items():
            backend = engine.backends[role]
            info = {"kind": "model", "role": role, "price": engine.cost.of(model).output}
            if hasattr(backend, "loaded"):
                info["loaded"] = bool(backend.loaded)  # live engines load once, when needed
                info["loads"] = state.loads.get(model, 0)
            data.append({"id": model, "object": "model", "created": int(state.started),
                         "owned_by": "tts", "tts": info})
        return JSONResponse({"object": "list", "data": data})

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/metrics")
    async def metrics():
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


class _Auth:
    """ASGI middleware: `Authorization: Bearer <key>` on every route but /health, compared in
    constant time."""

    def __init__(self, app, *, key: str, deny):
        self.app, self.key, self.deny = app, key.encode(), deny

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope.get("path") != "/health":
            header = b""
            for name, value in scope.get("headers", ()):
                if name == b"authorization":
                    header = value
                    break
            scheme, _, token = header.partition(b" ")
            if not (scheme.lower() == b"bearer"
                    and hmac.compare_digest(token.strip(), self.key)):
                await self.deny()(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _raise_constant(name: str):
    raise _bad(f"the body holds {name}, which is not valid JSON (numbers must be finite).",
               None, "invalid_json")
