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


# ---- untrusted replies (a misbehaving server) ---------------------------------------------
def _reply(choices='[{"index": 0, "message": {"role": "assistant", "content": "The answer '
                   'is 7."}, "finish_reason": "stop"}]', usage='{"prompt_tokens": 9, '
                                                            '"completion_tokens": 5}') -> bytes:
    return f'{{"choices": {choices}, "usage": {usage}}}'.encode()


BAD_REPLIES = [  # (id, body, what the error must name)
    ("choice-not-object", _reply(choices="[5]"), "choices\\[0\\] is int 5, not an object"),
    ("content-not-string", _reply(choices='[{"message": {"content": 7}}]'),
     "content is int 7, not a string"),
    ("message-not-object", _reply(choices='[{"message": "hi"}]'), "message is str"),
    ("tokens-infinity", _reply(usage='{"prompt_tokens": 9, "completion_tokens": Infinity}'),
     "completion_tokens float inf"),
    ("tokens-float", _reply(usage='{"prompt_tokens": 9, "completion_tokens": 3.7}'),
     "completion_tokens float 3.7"),
    ("tokens-bool", _reply(usage='{"prompt_tokens": true, "completion_tokens": 3}'),
     "prompt_tokens bool True"),
    ("tokens-huge", _reply(usage='{"prompt_tokens": 9, "completion_tokens": 1' + "0" * 400 + "}"),
     "completion_tokens int"),
    ("usage-missing", b'{"choices": [{"message": {"content": "x"}}]}', "`usage` is NoneType"),
    ("choices-string", _reply(choices='"abc"'), "`choices` is str"),
    ("reply-list", b"[1, 2]", "the reply is list"),
    ("index-string", _reply(choices='[{"index": "0", "message": {"content": "x"}}]'),
     "index is '0'"),
    ("logprob-nan", _reply(choices='[{"message": {"content": "x"}, "logprobs": {"content": '
                                   '[{"logprob": NaN}]}}]'), "logprob is nan"),
    ("not-utf8", b'{"choices": "\xff\xfe"}', "not UTF-8"),
    ("not-json", b"<html>oops</html>", "did not answer with JSON"),
]


class _Misbehaving(QuietHandler):
    body = b""
    hits = 0

    def do_POST(self) -> None:  # noqa: N802
        type(self).hits += 1
        self.read_body()
        if self.path.endswith("/tokenize"):
            self.reply(200, b'{"count": "many"}', {"Content-Type": "application/json"})
        else:
            self.reply(200, self.body, {"Content-Type": "application/json"})


@pytest.mark.parametrize("case", BAD_REPLIES, ids=[c[0] for c in BAD_REPLIES])
def test_malformed_replies_are_backend_errors_naming_the_field(case) -> None:
    name, body, match = case
    handler = type("H", (_Misbehaving,), {"body": body, "hits": 0})
    with serving(handler) as url:
        backend = OpenAIBackend(url, model="m", max_retries=0)
        with pytest.raises(BackendError, match=match) as err:
            backend.generate([GenRequest(prompt="hi", max_tokens=8, seed=0, logprobs=True)])
        assert url in str(err.value) and handler.hits == 1  # not retried: it would not help
        with pytest.raises(BackendError, match="/tokenize answered the count str 'many'"):
            backend.prompt_tokens(GenRequest(prompt="hi", max_tokens=8))
    assert "Error" not in str(err.value)  # no Python exception's name


def test_a_well_formed_reply_still_reads() -> None:
    handler = type("H", (_Misbehaving,), {"body": _reply(), "hits": 0})
    with serving(handler) as url:
        (got,) = OpenAIBackend(url, model="m").generate([GenRequest(prompt="hi", max_tokens=8)])
    assert (got[0].text, got[0].answer, got[0].tokens, got[0].prompt_tokens) == \
        ("The answer is 7.", "7", 5, 9)


BUILD_CASES = [c for c in BAD_REPLIES if c[0] in ("choice-not-object", "content-not-string",
                                                  "tokens-infinity", "not-utf8")]


@pytest.mark.parametrize("case", BUILD_CASES, ids=[c[0] for c in BUILD_CASES])
def test_bank_build_over_a_misbehaving_server_is_a_clear_error(case, tmp_path, capsys) -> None:
    import re

    from tts.cli import main

    handler = type("H", (_Misbehaving,), {"body": case[1], "hits": 0})
    with serving(handler) as url:
        code = main(["bank", "build", str(tmp_path / "b"), "--server", url, "--served-model",
                     "m", "--n", "1", "--samples", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "error:" in err and "Traceback" not in err
    assert re.search(case[2], err), err


# ---- timed-out attempts are billed ------------------------------------------------------
def _stalled_engine(url: str, **kw):
    from tts import Engine
    from tts.budgets import CostModel, ModelCost

    backend = OpenAIBackend(url, model="m", timeout=0.2, backoff=0.01, **kw)
    return backend, Engine(backend, cost=CostModel({"m": ModelCost(1.0, 1.0)}))


def test_timed_out_attempts_are_charged_and_unpaid_retries_not_made(error_server) -> None:
    """Each attempt that times out may have been generated and billed (a hosted API does):
    charged at its max_tokens; a retry is made only when the budget can pay for the lost
    attempt. Budget 250, one sample of 100: attempt 1 lost (100 charged, 100 still
    reserved), attempt 2 lost (200 + 100 > 250: no third attempt), 200 charged in all."""
    from tts.serving.scheduler import Scheduler, ServeError
    from tts.strategies import Vote

    handler, url = error_server
    handler.mode = "stall"
    backend, engine = _stalled_engine(url, max_retries=2)
    sched = Scheduler(engine)
    try:
        future = sched.submit("hi", 250, strategy=Vote(max_samples=1, max_tokens=100))
        with pytest.raises(ServeError, match="not retried: the request's budget cannot pay") \
                as err:
            future.result(timeout=30)
    finally:
        sched.close()
    assert handler.hits == 2 and backend.requests_sent == 2
    assert err.value.spent == 200 and err.value.tokens == {"m": 200}
    assert backend.lost_tokens == 200


def test_solve_pays_lost_attempts_before_retrying(error_server) -> None:
    from tts.strategies import Vote

    handler, url = error_server
    handler.mode = "stall"
    backend, engine = _stalled_engine(url, max_retries=5)
    with pytest.raises(BackendError, match="budget cannot pay"):
        engine.solve("hi", 350, strategy=Vote(max_samples=1, max_tokens=100))
    assert handler.hits == 3  # 100 reserved + 2 lost attempts paid; a third would pass 350
    unbudgeted, _ = _stalled_engine(url, max_retries=1)  # no budget (e.g. bank build): retried
    with pytest.raises(BackendError, match="after 2 attempt"):
        unbudgeted.generate([GenRequest(prompt="hi", max_tokens=100)])
    assert unbudgeted.lost_tokens == 200


class _StallOnce(QuietHandler):
    hits = 0

    def do_POST(self) -> None:  # noqa: N802
        type(self).hits += 1
        self.read_body()
        if self.hits == 1:
            time.sleep(1.0)  # longer than the client's timeout: this attempt is lost
            return
        self.reply(200, _reply(), {"Content-Type": "application/json"})


def test_a_paid_retry_that_succeeds_is_charged_and_reported() -> None:
    """The first attempt times out, the retry answers (5 tokens): the Result charges both, the
    lost one at its max_tokens, and its trace says so."""
    from tts.strategies import Vote

    handler = type("H", (_StallOnce,), {"hits": 0})
    with serving(handler) as url:
        backend, engine = _stalled_engine(url, max_retries=2)
        result = engine.solve("hi", 1000, strategy=Vote(max_samples=1, max_tokens=100))
    assert handler.hits == 2 and result.answer == "7"
    assert result.cost == 105 and result.tokens == {"m": 105} and backend.lost_tokens == 100
    assert any("timed out; charged its max_tokens (100 tokens" in t for t in result.trace)
