"""The OpenAI-compatible backend against a real `vllm serve` (tiny model) on 127.0.0.1.

Error paths (unreachable server, retries, timeouts) use real sockets on loopback: a port
with nothing listening, and a plain HTTP server that only answers errors or stalls.
"""

from __future__ import annotations

import importlib.util
import socket
import time

import pytest

from tts import models
from tts.backends import Backend
from tts.backends.openai import OpenAIBackend, ServerError, VLLMServer
from tts.errors import BackendError, ValidationError
from tts.types import GenRequest

from .http_util import QuietHandler, serving

QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have?"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Handler(QuietHandler):
    mode = "503"
    hits = 0

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        type(self).hits += 1
        self.read_body()
        if self.mode == "stall":
            time.sleep(2.0)
            return
        body = b'{"error": {"message": "This model\'s maximum context length is 64 tokens."}}'
        self.reply(503 if self.mode == "503" else 400, body,
                   {"Content-Type": "application/json"})


@pytest.fixture
def error_server():
    handler = type("H", (_Handler,), {"hits": 0})
    with serving(handler) as url:
        yield handler, url


def test_bad_settings_are_clear_errors() -> None:
    with pytest.raises(ValidationError, match="base_url"):
        OpenAIBackend("localhost:8000", model="m")
    with pytest.raises(ValidationError, match="timeout"):
        OpenAIBackend("http://127.0.0.1:1/v1", model="m", timeout=0)
    with pytest.raises(ValidationError, match="concurrency"):
        OpenAIBackend("http://127.0.0.1:1/v1", model="m", concurrency=0)
    assert isinstance(OpenAIBackend("http://127.0.0.1:1/v1", model="m"), Backend)


def test_unreachable_server_names_the_url() -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1"
    backend = OpenAIBackend(url, model="m", max_retries=2, backoff=0.01)
    with pytest.raises(BackendError, match=rf"{url}/chat/completions after 3 attempt"):
        backend.generate([GenRequest(prompt="hi", max_tokens=4, seed=0)])
    assert backend.requests_sent == 3


def test_retries_with_backoff_then_gives_up(error_server) -> None:
    handler, url = error_server
    backend = OpenAIBackend(url, model="m", max_retries=3, backoff=0.05)
    t0 = time.perf_counter()
    with pytest.raises(BackendError, match="HTTP 503"):
        backend.generate([GenRequest(prompt="hi", max_tokens=4, seed=0)])
    assert handler.hits == 4
    assert time.perf_counter() - t0 >= 0.05 + 0.1 + 0.2  # 0.05 * (1 + 2 + 4)


def test_client_errors_are_not_retried_and_explain(error_server) -> None:
    handler, url = error_server
    handler.mode = "400"
    backend = OpenAIBackend(url, model="m", max_retries=3, backoff=0.01)
    with pytest.raises(ServerError, match="context too long"):
        backend.generate([GenRequest(prompt="hi", max_tokens=4, seed=0)])
    assert handler.hits == 1


def test_timeout_is_reported(error_server) -> None:
    handler, url = error_server
    handler.mode = "stall"
    backend = OpenAIBackend(url, model="m", timeout=0.3, max_retries=1, backoff=0.01)
    with pytest.raises(BackendError, match="timeout=0.3"):
        backend.generate([GenRequest(prompt="hi", max_tokens=4, seed=0)])


# ---- a real vllm serve -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server():
    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vLLM is not installed; run `bash scripts/install_cpu.sh`")
    if not models.is_pulled("tiny"):
        pytest.skip("the tiny model is not pulled; run `tts models pull tiny`")
    # start-up alone can take minutes on 2 busy cores; a slow start is not what these tests test
    with VLLMServer("tiny", max_model_len=512, kv_cache_gib=1.0, startup_timeout=900) as srv:
        yield srv


@pytest.fixture(scope="module")
def backend(server):
    return OpenAIBackend(server.url, model=server.model, concurrency=8, timeout=120)


def _texts(completions):
    return [c.text for c in completions]


@pytest.mark.live
def test_seeds_reproduce_and_waves_match_one_call(backend) -> None:
    req = GenRequest(prompt=QUESTION, n=4, max_tokens=16, temperature=0.8, seed=7)
    (a,) = backend.generate([req])
    (b,) = backend.generate([req])
    assert _texts(a) == _texts(b)
    assert len(set(_texts(a))) > 1
    w1, w2 = backend.generate([
        GenRequest(prompt=QUESTION, n=1, max_tokens=16, temperature=0.8, seed=7),
        GenRequest(prompt=QUESTION, n=3, offset=1, max_tokens=16, temperature=0.8, seed=7)])
    assert _texts(w1) + _texts(w2) == _texts(a)


@pytest.mark.live
def test_usage_token_counts_and_prompt_tokens(backend) -> None:
    req = GenRequest(prompt=QUESTION, n=3, max_tokens=12, temperature=0.7, seed=1,
                     logprobs=True)
    (samples,) = backend.generate([req])
    expected_prompt = backend.prompt_tokens(req)  # the server's /tokenize
    for c in samples:
        assert 1 <= c.tokens <= 12
        assert c.prompt_tokens == expected_prompt
        assert c.mean_logprob is not None and c.mean_logprob <= 0
        assert (c.finish_reason == "length") == (c.tokens == 12)
    local = OpenAIBackend(backend.base_url, model=backend.model, tokenizer="tiny")
    assert local.prompt_tokens(req) == expected_prompt
    prefixed = GenRequest(prompt=QUESTION, max_tokens=6, temperature=0,
                          assistant_prefix="The final answer is \\boxed{")
    (p,) = backend.generate([prefixed])
    assert p[0].prompt_tokens == backend.prompt_tokens(prefixed) == local.prompt_tokens(prefixed)
    assert p[0].prompt_tokens > expected_prompt


@pytest.mark.live
def test_n_per_request_mode_counts_each_choice(backend) -> None:
    batched = OpenAIBackend(backend.base_url, model=backend.model, per_sample=False)
    req = GenRequest(prompt=QUESTION, n=3, max_tokens=10, temperature=0.9, seed=2)
    (samples,) = batched.generate([req])
    assert len(samples) == 3 and all(1 <= c.tokens <= 10 for c in samples)
    assert batched.requests_sent == 1
    (again,) = batched.generate([req])
    assert _texts(again) == _texts(samples)


@pytest.mark.live
def test_context_too_long_from_a_real_server(backend) -> None:
    with pytest.raises(ServerError, match="HTTP 400"):
        backend.generate([GenRequest(prompt="word " * 600, max_tokens=8, seed=0)])
