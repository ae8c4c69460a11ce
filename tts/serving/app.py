"""The OpenAI-compatible FastAPI app of `tts serve`.

Routes: POST /v1/chat/completions and /v1/completions, GET /v1/models, /health, /metrics and
/v1/tts/audit (the audit statistics, `tts.serving.audit`, when the server audits, with the
drift alarm and guard's state under `drift`, `tts.guard`).
Model "tts-auto" runs the policy (or `strategy` when given); an underlying model's name runs a
plain vote of `samples` (default 1) samples of that tier (greedy at temperature 0). Requests are
parsed, and bad ones refused, by `tts.serving.requests` (which also states the budget rule).

The response's `usage` counts tokens the backends processed (prompt) and generated (all models,
all samples); the extra top-level field `tts` holds the status, answer, plan, tokens per model,
cost, budget, escalated, votes, trace and whether the answer is audited. The answer text
(`message.content`) is only the answer (or, for a model served directly, the text of the
sample that gave it).

A client must send its body within `read_timeout` (408, the connection closed, otherwise);
a client that disconnects while its request is answered cancels it: the scheduler sends no
further step for it (counted in `tts_client_disconnects`).
"""


import asyncio
import hmac
import json
import secrets
import time
from typing import Any

from starlette.requests import ClientDisconnect

from tts.audit import Auditor
from tts.errors import BankError, TTSError, UnknownNameError, ValidationError
from tts.serving.audit import AuditCollector
from tts.serving.requests import (AUTO_MODEL, APIError, Ask, RequestParser, ServeConfig,
                                  parse_json)
from tts.serving.scheduler import Scheduler, ServeError, Served

__all__ = ["AUTO_MODEL", "App", "ServeConfig", "create_app"]


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
        in_flight = Gauge("tts_in_flight", "Requests being answered (audits included)",
                          registry=r)
        in_flight.set_function(lambda: scheduler.in_flight)
        self.disconnects = Counter("tts_client_disconnects", "Requests whose client left "
                                   "before the answer (their generation was stopped)",
                                   registry=r)
        lost = Gauge("tts_timed_out_tokens", "Max tokens of backend attempts that timed out "
                     "(charged to their requests: a hosted API bills them)", ["model"],
                     registry=r)
        for backend in scheduler.engine.backends.values():
            if hasattr(backend, "lost_tokens"):
                lost.labels(backend.model).set_function(lambda b=backend: b.lost_tokens)
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



class App:
    """Holds the scheduler, limits and metrics; builds the FastAPI app."""

    def __init__(self, scheduler: Scheduler, config: ServeConfig | None = None,
                 loads: dict[str, int] | None = None, auditor: Auditor | None = None):
        self.scheduler = scheduler
        self.auditor = auditor
        """Audits tts-auto answers given below the top model (None: no audits)."""
        self.loads = loads if loads is not None else {}
        """Engine builds per live model so far (filled by the CLI's load callback)."""
        self.config = config or ServeConfig()
        self.metrics = Metrics(scheduler, self.loads)
        if auditor is not None:
            self.metrics.registry.register(AuditCollector(auditor))
        scheduler.on_batch = self.metrics.on_batch
        self.roles = {b.model: role for role, b in scheduler.engine.backends.items()}
        self.requests = RequestParser(self.roles, self.config,
                                      lambda model: scheduler.engine.cost.of(model).output)
        self.started = time.time()
        self.active = 0

    # ---- responses ---------------------------------------------------------------------
    def tts_field(self, served: Served, ask: Ask, audited: bool) -> dict[str, Any]:
        r = served.result
        return {"status": r.status, "answer": r.answer,
                "plan": {"strategy": r.plan.strategy, "options": dict(r.plan.options)},
                "tokens": dict(r.tokens), "cost": r.cost, "budget": r.budget,
                "escalated": r.escalated, "votes": dict(r.votes), "difficulty": r.difficulty,
                "seconds": r.seconds, "batches": served.batches, "trace": list(r.trace),
                "audited": audited, "notes": ask.notes}

    @staticmethod
    def content(served: Served, ask: Ask) -> tuple[str, str]:
        r = served.result
        if r.status == "insufficient_budget":
            return "", "length"
        if ask.model != AUTO_MODEL and served.text:
            return served.text, "stop"
        return r.answer or "", "stop"


def create_app(scheduler: Scheduler, config: ServeConfig | None = None, *,
               loads: dict[str, int] | None = None, auditor: Auditor | None = None):
    """The FastAPI app serving `scheduler` (see the module docstring); `loads` counts engine
    builds per live model (shown in /v1/models and /metrics); `auditor` audits tts-auto's
    answers (`tts.serving.audit.serve_auditor`)."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response, StreamingResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    state = App(scheduler, config, loads, auditor)
    cfg = state.config
    app = FastAPI(title="tts serve", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.tts = state

    def error_response(err: APIError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else \
            {"Connection": "close"} if err.status == 408 else None
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
                raise APIError(400, "bad Content-Length header.", code="invalid_request")
            if int(length) > cfg.max_body_bytes:
                raise APIError(413, f"the request body is {int(length)} bytes; this server "
                                    f"takes at most {cfg.max_body_bytes}.",
                               code="request_too_large")
        data = bytearray()

        async def read() -> None:
            async for chunk in request.stream():
                data.extend(chunk)
                if len(data) > cfg.max_body_bytes:
                    raise APIError(413, f"the request body is over {cfg.max_body_bytes} bytes.",
                                   code="request_too_large")

        try:
            await asyncio.wait_for(read(), cfg.read_timeout)
        except asyncio.TimeoutError:
            raise APIError(408, f"the request body did not arrive within "
                                f"{cfg.read_timeout:g} s ({len(data)} bytes came).",
                           code="request_timeout") from None
        except ClientDisconnect:
            raise APIError(499, "the client closed the connection before sending its whole "
                                "body.", code="client_closed") from None
        ctype = request.headers.get("content-type", "application/json").split(";")[0].strip()
        if ctype and ctype != "application/json":
            raise APIError(415, f"the body must be application/json, got {ctype[:60]!r}.",
                           code="unsupported_media_type")
        return parse_json(bytes(data))

    async def run(ask: Ask, request: Request) -> Served:
        lookup = getattr(scheduler.engine.backends["small"], "lookup", None)
        try:
            if lookup is not None:
                try:
                    lookup(ask.question)
                except BankError:
                    raise APIError(400, f"question not found in bank: {ask.question[:80]!r}. "
                                        f"{REPLAY_ONLY}",
                                   param="messages", code="question_not_in_bank") from None
            future = scheduler.submit(ask.question, ask.budget, strategy=ask.strategy,
                                      seed=ask.seed)
        except (BankError, UnknownNameError, ValidationError) as exc:
            code = "bank_error" if isinstance(exc, BankError) else "invalid_value"
            raise APIError(400, str(exc), param=getattr(exc, "parameter", None),
                           code=code) from None
        except ServeError as exc:
            raise APIError(exc.status, str(exc), type_="server_error",
                           code="unavailable") from None
        answer = asyncio.wrap_future(future)
        left = asyncio.ensure_future(_disconnected(request))
        try:
            done, _ = await asyncio.wait({answer, left}, timeout=cfg.request_timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
            if answer in done:
                return answer.result()
            if left in done:  # the client is gone: stop generating for it
                future.cancel()
                state.metrics.disconnects.inc()
                raise APIError(499, "the client closed the connection; the request was "
                                    "cancelled.", code="client_closed")
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
            if exc.refused and ask.model != AUTO_MODEL:  # the client's plan, e.g. samples
                raise APIError(400, str(exc), param="samples", code="backend_refused",
                               extra={"spent": exc.spent, "tokens": exc.tokens}) from None
            raise APIError(exc.status, str(exc), type_="server_error",
                           code="backend_timeout" if exc.status == 504 else
                           "backend_unavailable",
                           extra={"spent": exc.spent, "tokens": exc.tokens}) from None
        except TTSError as exc:
            raise APIError(503, str(exc), type_="server_error", code="backend_error") \
                from None
        finally:
            left.cancel()

    async def answer(request: Request, chat: bool, route: str):
        start = time.perf_counter()
        model_label = "?"
        try:
            ask = state.requests.parse(await read_json(request), chat=chat)
            model_label = ask.model
            if state.active >= cfg.max_in_flight:
                raise APIError(429, f"the server is busy ({state.active} requests in flight, "
                                    f"limit {cfg.max_in_flight}); retry later.",
                               type_="server_error", code="server_busy")
            state.active += 1
            try:
                served = await run(ask, request)
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
        audited = state.auditor is not None and ask.model == AUTO_MODEL and \
            state.auditor.offer(ask.question, r, planned=ask.strategy is None)  # off its path
        extra = state.tts_field(served, ask, audited)
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

    @app.get("/v1/tts/audit")
    async def audit():
        if state.auditor is None:
            return error_response(APIError(404, "this server does not audit (start it with "
                                                "--audit-rate).", code="audits_off"))
        return JSONResponse(state.auditor.snapshot())

    @app.get("/metrics")
    async def metrics():
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


REPLAY_ONLY = ("This server replays a bank of logged samples, so it answers only the questions "
               "the bank holds; to answer others, serve live models (`tts serve --small "
               "small`, or --ladder) or an OpenAI-compatible server (`tts serve --server URL "
               "--served-model NAME`), or add them to a bank with `tts bank build`.")
"""What a replay server advises for a question its bank lacks."""


async def _disconnected(request) -> None:
    """Returns when the client of `request` (whose body was read) disconnects."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


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
