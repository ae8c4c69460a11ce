"""`tts serve` end to end: the real `openai` client against real server processes on 127.0.0.1.

Replay backend (the bundled bank): answers equal `tts.solve`'s, usage and the `tts` field,
streaming, metrics, concurrency (continuous batching), a catalogue of bad inputs (each a 4xx in
OpenAI's error format), and a fault test (a front server over a second `tts serve` that is
killed mid-load and restarted). One live test (`-m live`) runs the tiny model.
"""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import tts

from .serve_util import ServeProcess, free_port

pytest.importorskip("fastapi")
openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx")

KEY = "test-key-123"
BANK = tts._load(str(tts.BUNDLED_BANK))
PROBLEMS = list(BANK.problems.values())
Q0 = PROBLEMS[0].question


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with ServeProcess("--api-key", KEY, "--max-body-bytes", "65536", "--max-prompt-chars",
                      "4000", log=log) as proc:
        yield proc


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url, api_key=KEY, max_retries=0, timeout=30)


def chat(client, question=Q0, **kw):
    return client.chat.completions.create(
        model=kw.pop("model", "tts-auto"), messages=[{"role": "user", "content": question}], **kw)


# ---- answers -------------------------------------------------------------------------------
def test_chat_answer_usage_and_plan_match_solve(client) -> None:
    resp = chat(client, extra_body={"budget": 200_000})
    ref = tts.solve(Q0, 200_000)
    assert resp.choices[0].message.content == ref.answer == "18"
    assert resp.choices[0].finish_reason == "stop"
    extra = resp.model_extra["tts"]
    assert extra["status"] == "answered" and extra["answer"] == ref.answer
    assert extra["plan"]["strategy"] == ref.strategy
    assert extra["tokens"] == dict(ref.tokens) and extra["cost"] == pytest.approx(ref.cost)
    assert extra["budget"] == 200_000 and extra["escalated"] == ref.escalated
    assert resp.usage.completion_tokens == sum(ref.tokens.values())  # no prompt counting
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    assert "tts" not in resp.choices[0].message.content


def test_budget_defaults_from_max_tokens_and_completions_route(client) -> None:
    resp = client.completions.create(model="tts-auto", prompt=PROBLEMS[1].question,
                                     max_tokens=3000)
    extra = resp.model_extra["tts"]
    assert extra["budget"] == 3000 and extra["cost"] <= 3000
    assert resp.choices[0].text == extra["answer"]
    assert resp.object == "text_completion"


def test_escalation_and_direct_models(client) -> None:
    hard = next(p for p in PROBLEMS[:60]
                if tts.solve(p.question, 400_000).escalated)
    resp = chat(client, hard.question, extra_body={"budget": 400_000})
    assert resp.model_extra["tts"]["escalated"] is True
    assert set(resp.model_extra["tts"]["tokens"]) == {"llama-2-13b", "gpt-4"}
    greedy = chat(client, hard.question, model="gpt-4", temperature=0)
    extra = greedy.model_extra["tts"]
    assert extra["plan"]["options"]["role"] == "large" and extra["tokens"].keys() == {"gpt-4"}
    vote = chat(client, hard.question, model="llama-2-13b", extra_body={"samples": 5})
    assert sum(vote.model_extra["tts"]["votes"].values()) <= 5
    assert vote.model_extra["tts"]["tokens"].keys() == {"llama-2-13b"}


def test_insufficient_budget_is_an_empty_answer_with_the_status(client) -> None:
    resp = chat(client, extra_body={"budget": 1})
    assert resp.choices[0].message.content == ""
    assert resp.choices[0].finish_reason == "length"
    assert resp.model_extra["tts"]["status"] == "insufficient_budget"
    assert resp.model_extra["tts"]["cost"] == 0 and resp.usage.total_tokens == 0


def test_streaming_chat_and_completions(client) -> None:
    full = chat(client, PROBLEMS[2].question, extra_body={"budget": 50_000})
    chunks = list(chat(client, PROBLEMS[2].question, stream=True,
                       stream_options={"include_usage": True}, extra_body={"budget": 50_000}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0].model_extra["tts"]["answer"] == text
    assert chunks[-1].usage.total_tokens == full.usage.total_tokens
    stream = client.completions.create(model="tts-auto", prompt=PROBLEMS[2].question,
                                       stream=True, extra_body={"budget": 50_000})
    assert "".join(c.choices[0].text for c in stream) == text


def test_models_health_and_metrics(server, client) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids == ["tts-auto", "llama-2-13b", "gpt-4"]
    assert httpx.get(f"http://127.0.0.1:{server.port}/health").json() == {"status": "ok"}
    chat(client)
    text = httpx.get(f"http://127.0.0.1:{server.port}/metrics",
                     headers={"Authorization": f"Bearer {KEY}"}).text
    for needle in ('tts_requests_total{model="tts-auto",route="chat",status="200"}',
                   'tts_tokens_total{model="llama-2-13b"}', "tts_escalations_total",
                   "tts_request_latency_seconds_bucket", "tts_batch_size_bucket",
                   "tts_in_flight"):
        assert needle in text, needle


def _batch_sizes(server) -> tuple[float, float]:
    """(batches, batches of size 1) sent to the small model so far, from /metrics."""
    text = httpx.get(f"http://127.0.0.1:{server.port}/metrics",
                     headers={"Authorization": f"Bearer {KEY}"}).text
    got = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
           if line.startswith("tts_batch_size_")}
    return (got.get('tts_batch_size_count{model="llama-2-13b"}', 0.0),
            got.get('tts_batch_size_bucket{le="1.0",model="llama-2-13b"}', 0.0))


def test_concurrent_requests_are_batched_and_equal_solve_many(server) -> None:
    """60 requests at once (async client, one connection each), votes of several waves: the
    answers equal solve_many's, and requests shared generate batches."""
    import asyncio

    questions = [p.question for p in PROBLEMS[:60]]
    before = _batch_sizes(server)

    async def go():
        aclient = openai.AsyncOpenAI(base_url=server.url, api_key=KEY, max_retries=0,
                                     timeout=60)
        try:
            return await asyncio.gather(*(aclient.chat.completions.create(
                model="tts-auto", messages=[{"role": "user", "content": q}],
                extra_body={"budget": 100_000, "strategy": "vote"}) for q in questions))
        finally:
            await aclient.close()

    replies = asyncio.run(go())
    refs = tts.solve_many(questions, 100_000, strategy="vote")
    assert [r.choices[0].message.content for r in replies] == [x.answer or "" for x in refs]
    assert [r.model_extra["tts"]["cost"] for r in replies] == pytest.approx(
        [x.cost for x in refs])
    after = _batch_sizes(server)
    batches, singles = after[0] - before[0], after[1] - before[1]
    steps = sum(r.model_extra["tts"]["batches"] for r in replies)
    assert batches < steps and singles < batches  # batches of several requests' steps


# ---- bad input catalogue -----------------------------------------------------------------
MSG = [{"role": "user", "content": Q0}]


def _chat(**kw):
    return {"model": "tts-auto", "messages": MSG, **kw}


BAD = [  # (id, route, body (dict, or raw bytes), headers override, expected status)
    ("invalid-json", "chat", b'{"model": "tts-auto", "messages": [', None, 400),
    ("body-is-list", "chat", [1, 2], None, 400),
    ("body-is-string", "chat", "hello", None, 400),
    ("missing-model", "chat", {"messages": MSG}, None, 400),
    ("model-not-string", "chat", {"model": 7, "messages": MSG}, None, 400),
    ("unknown-model", "chat", {"model": "gpt-7", "messages": MSG}, None, 404),
    ("missing-messages", "chat", {"model": "tts-auto"}, None, 400),
    ("messages-string", "chat", {"model": "tts-auto", "messages": "hi"}, None, 400),
    ("messages-empty", "chat", {"model": "tts-auto", "messages": []}, None, 400),
    ("message-not-object", "chat", {"model": "tts-auto", "messages": ["hi"]}, None, 400),
    ("bad-role", "chat", {"model": "tts-auto", "messages": [{"role": "wizard",
                                                             "content": "x"}]}, None, 400),
    ("content-int", "chat", {"model": "tts-auto", "messages": [{"role": "user",
                                                                "content": 5}]}, None, 400),
    ("content-image", "chat", {"model": "tts-auto", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}]}, None, 400),
    ("conversation", "chat", _chat(messages=MSG + [{"role": "assistant", "content": "18"}]),
     None, 400),
    ("two-user-messages", "chat", _chat(messages=MSG + MSG), None, 400),
    ("empty-question", "chat", _chat(messages=[{"role": "user", "content": "   "}]), None, 400),
    ("budget-negative", "chat", _chat(budget=-5), None, 400),
    ("budget-zero", "chat", _chat(budget=0), None, 400),
    ("budget-nan", "chat", b'{"model": "tts-auto", "messages": [{"role": "user", '
                           b'"content": "hi"}], "budget": NaN}', None, 400),
    ("budget-infinity", "chat", b'{"model": "tts-auto", "messages": [{"role": "user", '
                                b'"content": "hi"}], "budget": Infinity}', None, 400),
    ("budget-huge", "chat", _chat(budget=1e300), None, 400),
    ("budget-string", "chat", _chat(budget="100"), None, 400),
    ("budget-bool", "chat", _chat(budget=True), None, 400),
    ("max-tokens-negative", "chat", _chat(max_tokens=-1), None, 400),
    ("max-tokens-float", "chat", _chat(max_tokens=1.5), None, 400),
    ("max-tokens-huge", "chat", _chat(max_tokens=10**15), None, 400),
    ("n-2", "chat", _chat(n=2), None, 400),
    ("tools", "chat", _chat(tools=[{"type": "function", "function": {"name": "f"}}]), None,
     400),
    ("response-format-json", "chat", _chat(response_format={"type": "json_object"}), None, 400),
    ("logprobs", "chat", _chat(logprobs=True), None, 400),
    ("stop", "chat", _chat(stop=["\n"]), None, 400),
    ("stream-not-bool", "chat", _chat(stream="yes"), None, 400),
    ("stream-options-bad", "chat", _chat(stream=True, stream_options=[1]), None, 400),
    ("temperature-high", "chat", _chat(temperature=5), None, 400),
    ("seed-negative", "chat", _chat(seed=-1), None, 400),
    ("unknown-parameter", "chat", _chat(frobnicate=1), None, 400),
    ("samples-on-auto", "chat", _chat(samples=3), None, 400),
    ("strategy-unknown", "chat", _chat(strategy="rm -rf"), None, 400),
    ("greedy-with-samples", "chat", _chat(model="gpt-4", temperature=0, samples=3), None, 400),
    ("prompt-too-long", "chat", _chat(messages=[{"role": "user", "content": "x" * 5000}]),
     None, 400),
    ("not-in-bank", "chat", _chat(messages=[{"role": "user", "content": "What is 2+2?"}]),
     None, 400),
    ("more-samples-than-the-bank", "chat", _chat(model="gpt-4", samples=10), None, 400),
    ("budget-10**400", "chat", b'{"model": "tts-auto", "messages": [{"role": "user", '
                               b'"content": "hi"}], "budget": 1' + b"0" * 400 + b"}", None, 400),
    ("body-too-large", "chat", _chat(pad="x" * 70_000), None, 413),
    ("wrong-content-type", "chat", b"model=tts-auto", {"Content-Type": "text/plain"}, 415),
    ("wrong-api-key", "chat", _chat(), {"Authorization": "Bearer nope"}, 401),
    ("missing-api-key", "chat", _chat(), {"Authorization": ""}, 401),
    ("prompt-token-ids", "completions", {"model": "tts-auto", "prompt": [1, 2, 3]}, None, 400),
    ("missing-prompt", "completions", {"model": "tts-auto"}, None, 400),
    ("echo", "completions", {"model": "tts-auto", "prompt": Q0, "echo": True}, None, 400),
    ("basic-auth-scheme", "chat", _chat(), {"Authorization": f"Basic {KEY}"}, 401),
    ("models-without-key", "GET /v1/models", None, {"Authorization": ""}, 401),
    ("metrics-without-key", "GET /metrics", None, {"Authorization": ""}, 401),
    ("get-on-post-route", "GET chat", None, None, 405),
    ("unknown-route", "GET /v1/nothing", None, None, 404),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_input_is_a_4xx_in_openai_format(server, case) -> None:
    name, route, body, headers, status = case
    base = f"http://127.0.0.1:{server.port}"
    path = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}
    h = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    h.update(headers or {})
    h = {k: v for k, v in h.items() if v}
    if route.startswith("GET"):
        target = route.split()[1]
        resp = httpx.get(base + path.get(target, target), headers=h)
    else:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        resp = httpx.post(base + path[route], content=data, headers=h)
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert isinstance(error["message"], str) and len(error["message"]) > 10
    assert error["type"] and "code" in error and "param" in error


def test_openai_client_raises_typed_errors(server) -> None:
    bad = openai.OpenAI(base_url=server.url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    good = openai.OpenAI(base_url=server.url, api_key=KEY, max_retries=0)
    with pytest.raises(openai.NotFoundError, match="gpt-7"):
        chat(good, model="gpt-7")
    with pytest.raises(openai.BadRequestError, match="budget"):
        chat(good, extra_body={"budget": -1})
    with pytest.raises(openai.BadRequestError, match="not found in bank") as err:
        chat(good, "What is 2+2?")
    advice = err.value.response.json()["error"]["message"]  # tts serve has no --live
    assert "--live" not in advice and "tts serve --small" in advice and "--server" in advice
    assert chat(good).choices[0].message.content == "18"  # still serving


# ---- faults --------------------------------------------------------------------------------
def test_backend_killed_mid_load_then_back(tmp_path) -> None:
    """Front `tts serve --server` over a replay `tts serve` (an OpenAI-compatible backend):
    the backend is SIGKILLed while 40 requests are in flight, then restarted on its port."""
    port = free_port()
    backend = ServeProcess(port=port, log=tmp_path / "backend1.log")
    front = None
    try:
        front = ServeProcess("--server", f"http://127.0.0.1:{port}/v1", "--served-model",
                             "llama-2-13b", "--backend-timeout", "3", "--request-timeout",
                             "30", log=tmp_path / "front.log")
        client = openai.OpenAI(base_url=front.url, api_key="none", max_retries=0, timeout=60)
        ok = chat(client, extra_body={"budget": 4000})
        assert ok.choices[0].message.content == "18"
        outcomes: list = []
        lock = threading.Lock()

        def one(q):
            try:
                r = chat(client, q, extra_body={"budget": 8000})
                out = ("ok", r.model_extra["tts"]["status"])
            except openai.APIStatusError as exc:
                body = exc.response.json()["error"]
                out = ("error", exc.status_code, body["message"], body.get("spent"),
                       body.get("tokens"))
            with lock:
                outcomes.append(out)

        with ThreadPoolExecutor(20) as pool:
            futures = [pool.submit(one, p.question) for p in PROBLEMS[:40]]
            deadline = time.monotonic() + 30
            while len(outcomes) < 3 and time.monotonic() < deadline:  # mid-load
                time.sleep(0.005)
            done_before_kill = len(outcomes)
            backend.kill()
            for f in futures:
                f.result(timeout=60)
        assert len(outcomes) == 40  # every request got an answer or an error
        errors = [o for o in outcomes if o[0] == "error"]
        assert errors or done_before_kill == 40, "the kill should have failed some requests"
        for _, status, message, spent, tokens in errors:
            assert status in (503, 504)
            assert "tokens already spent" in message and "llama-2-13b" in message
            # what was generated before the kill is reported (1 unit per token here)
            assert spent == sum(tokens.values()) and f"{spent:g} units" in message
        assert front.alive()
        assert httpx.get(f"http://127.0.0.1:{front.port}/health").status_code == 200
        with pytest.raises(openai.APIStatusError) as err:  # backend still down: clear error
            chat(client, PROBLEMS[5].question, extra_body={"budget": 4000})
        assert err.value.status_code in (503, 504)
        backend = ServeProcess(port=port, log=tmp_path / "backend2.log")
        again = chat(client, PROBLEMS[6].question, extra_body={"budget": 8000})
        assert again.model_extra["tts"]["status"] == "answered"
    finally:
        if front is not None:
            front.close()
        backend.close()


def test_hung_backend_times_out_with_504_then_recovers(tmp_path) -> None:
    """A backend that accepts connections but never answers (SIGSTOP): 504 naming the timeout
    and charging the timed-out attempts; after SIGCONT the same server answers again."""
    import os
    import signal

    with ServeProcess(log=tmp_path / "backend.log") as backend, \
            ServeProcess("--server", backend.url, "--served-model", "llama-2-13b",
                         "--backend-timeout", "0.5", log=tmp_path / "front.log") as front:
        client = openai.OpenAI(base_url=front.url, api_key="none", max_retries=0, timeout=60)
        os.kill(backend.process.pid, signal.SIGSTOP)
        try:
            with pytest.raises(openai.APIStatusError) as err:
                chat(client, extra_body={"budget": 4000})
        finally:
            os.kill(backend.process.pid, signal.SIGCONT)
        assert err.value.status_code == 504
        body = err.value.response.json()["error"]
        assert "timeout" in body["message"] and body["code"] == "backend_timeout"
        # every timed-out attempt may have been generated and billed: charged at its
        # max_tokens (retries paid before they were made), within the budget
        assert 0 < body["spent"] <= 4000 and body["tokens"] == {"llama-2-13b": body["spent"]}
        assert "tokens already spent" in body["message"]
        assert chat(client, extra_body={"budget": 4000}).choices[0].message.content == "18"


def test_replicas_spread_and_skip_a_dead_one(tmp_path) -> None:
    """OpenAIBackend over three replicas, one of them dead: every request is answered and
    both live replicas get work."""
    from tts.backends.openai import OpenAIBackend
    from tts.types import GenRequest

    dead = f"http://127.0.0.1:{free_port()}/v1"
    with ServeProcess(log=tmp_path / "r1.log") as r1, ServeProcess(log=tmp_path / "r2.log") as r2:
        backend = OpenAIBackend([dead, r1.url, r2.url], model="llama-2-13b", max_retries=1,
                                backoff=0.01, cooldown=30)
        reqs = [GenRequest(prompt=p.question, n=2, max_tokens=512, seed=i)
                for i, p in enumerate(PROBLEMS[:8])]
        out = backend.generate(reqs)
        assert all(len(c) == 2 for c in out)
        assert backend.requests_sent < 2 * 16  # the dead one was skipped after failing
        for r in (r1, r2):
            metrics = httpx.get(f"http://127.0.0.1:{r.port}/metrics").text
            assert 'tts_requests_total{model="llama-2-13b",route="chat",status="200"}' in metrics


# ---- ladders, partial failures, security ---------------------------------------------------
DATE = tts.BUNDLED_BANK.parent / "mot_date"
DATE_LADDER = ["llama-2-13b", "gpt-3.5-turbo", "gpt-4"]


def test_replay_ladder_server(tmp_path) -> None:
    """`tts serve --bank mot_date --ladder a,b,c --policy ladder.json`: three tiers by name,
    tts-auto runs the policy's ladder (climbing to the top on some questions), answers, usage
    and plan equal the engine's."""
    from tts.policy import LadderLevel, LadderPolicy
    from tts.policy import load_policy
    from tts.strategies import Rung

    policy = LadderPolicy(ladder=tuple(DATE_LADDER), levels=(LadderLevel(0, (
        Rung(role="small", mode="pot", max_samples=4, climb_below=0.9),
        Rung(role="tier1", mode="pot", max_samples=4, climb_above=0.5),  # always climbs
        Rung(role="large", mode="greedy", temperature=0.0, max_samples=1))),))
    path = tmp_path / "ladder.json"
    policy.to_json(path)
    engine = tts.replay_engine(DATE, ladder=DATE_LADDER, policy=load_policy(path))
    questions = [p.question for p in list(tts._load(str(DATE)).problems.values())[:20]]
    with ServeProcess("--bank", str(DATE), "--ladder", ",".join(DATE_LADDER), "--policy",
                      str(path), log=tmp_path / "ladder.log") as server:
        client = openai.OpenAI(base_url=server.url, api_key="none", max_retries=0, timeout=30)
        models = {m.id: m.model_extra["tts"] for m in client.models.list()}
        assert list(models) == ["tts-auto", *DATE_LADDER]
        assert [models[m]["role"] for m in DATE_LADDER] == ["small", "tier1", "large"]
        with ThreadPoolExecutor(10) as pool:
            replies = list(pool.map(lambda q: chat(client, q, extra_body={"budget": 200_000}),
                                    questions))
        refs = engine.solve_many(questions, 200_000)
        for r, ref in zip(replies, refs):
            extra = r.model_extra["tts"]
            assert (r.choices[0].message.content, extra["plan"]["strategy"]) == \
                (ref.answer or "", "ladder")
            assert extra["tokens"] == dict(ref.tokens) and extra["cost"] == \
                pytest.approx(ref.cost)
            assert r.usage.completion_tokens == sum(ref.tokens.values())
        climbed = [len(r.model_extra["tts"]["tokens"]) for r in replies]
        assert 1 in climbed and 3 in climbed  # kept the cheapest answer / climbed to the top
        mid = chat(client, questions[0], model="gpt-3.5-turbo", extra_body={"samples": 3})
        assert mid.model_extra["tts"]["plan"]["options"]["role"] == "tier1"
        assert mid.model_extra["tts"]["tokens"].keys() == {"gpt-3.5-turbo"}


def test_openai_backend_error_carries_what_did_arrive() -> None:
    """One request of a batch is refused by the server (HTTP 400, not retried): the error
    carries the other request's samples, which the server did generate."""
    from tts.backends.openai import OpenAIBackend
    from tts.errors import BackendError
    from tts.types import GenRequest

    with ServeProcess() as replica:
        backend = OpenAIBackend(replica.url, model="llama-2-13b", max_retries=0)
        good = GenRequest(prompt=Q0, n=3, seed=0)
        bad = GenRequest(prompt="What is 2+2?", n=2, seed=0)
        with pytest.raises(BackendError, match="HTTP 400") as err:
            backend.generate([good, bad])
        got, lost = err.value.partial
        assert lost == [] and len(got) == 3
        assert got == backend.generate([good])[0]


def test_a_backend_refusing_one_request_fails_only_that_one(tmp_path) -> None:
    """Front `tts serve --server` over a replay server that refuses questions outside its bank:
    requests sent together share batches, yet only the refused one fails (503 with the
    backend's reason and tokens spent); the others are answered."""
    with ServeProcess(log=tmp_path / "backend.log") as backend, \
            ServeProcess("--server", backend.url, "--served-model", "llama-2-13b",
                         log=tmp_path / "front.log") as front:
        client = openai.OpenAI(base_url=front.url, api_key="none", max_retries=0, timeout=60)
        questions = [p.question for p in PROBLEMS[:12]] + ["What is 2+2?"]

        def one(q):
            try:
                return chat(client, q, extra_body={"budget": 8000}).model_extra["tts"]
            except openai.APIStatusError as exc:
                return exc

        for _ in range(3):  # several rounds: the refused request lands in shared batches
            with ThreadPoolExecutor(len(questions)) as pool:
                out = list(pool.map(one, questions))
            assert all(isinstance(o, dict) and o["status"] == "answered" for o in out[:-1])
            err = out[-1]
            assert isinstance(err, openai.APIStatusError) and err.status_code == 503
            body = err.response.json()["error"]
            assert "not found in bank" in body["message"]
            assert "tokens already spent" in body["message"] and body["spent"] == 0


def test_security_defaults(monkeypatch) -> None:
    from tts.cli import build_parser
    from tts.errors import ValidationError
    from tts.serving.cli import build_engine

    args = build_parser().parse_args(["serve"])
    assert args.host == "127.0.0.1" and args.api_key is None
    remote = build_parser().parse_args(["serve", "--server", "http://10.0.0.5:8000/v1",
                                        "--served-model", "m", "--backend-api-key", "K"])
    with pytest.raises(ValidationError, match="plain http"):
        build_engine(remote)  # the key would travel unencrypted: refused before serving
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    plain = build_parser().parse_args(["serve", "--server", "http://10.0.0.5:8000/v1",
                                       "--served-model", "m"])
    assert build_engine(plain).backends["small"].api_key is None  # env key not forwarded


def test_live_flags_build_lazy_engines() -> None:
    """`--ladder tiny,small` and `--small tiny --large small` build vLLM backends without
    loading anything (the CLI then loads only the cheapest before serving); a ladder out of
    price order is refused before any load."""
    from tts import models
    from tts.cli import build_parser
    from tts.errors import ValidationError
    from tts.serving.cli import build_engine

    if importlib.util.find_spec("vllm") is None or not (models.is_pulled("tiny")
                                                        and models.is_pulled("small")):
        pytest.skip("needs vLLM and the tiny and small models")
    events: list[dict] = []
    for flags in (["--ladder", "tiny,small"], ["--small", "tiny", "--large", "small"]):
        engine = build_engine(build_parser().parse_args(["serve", *flags]), events.append)
        assert engine.models == {"small": "smollm2-135m", "large": "qwen2.5-coder-0.5b"}
        assert not any(b.loaded for b in engine.backends.values())
    assert events == []
    with pytest.raises(ValidationError, match="cheapest first"):
        build_engine(build_parser().parse_args(["serve", "--ladder", "small,tiny"]))


def test_api_key_from_the_environment(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TTS_SERVE_API_KEY", "env-key-456")
    with ServeProcess(log=tmp_path / "env.log") as server:
        base = f"http://127.0.0.1:{server.port}"
        assert httpx.get(base + "/health").status_code == 200
        assert httpx.get(base + "/v1/models").status_code == 401
        ok = httpx.get(base + "/v1/models", headers={"Authorization": "Bearer env-key-456"})
        assert ok.status_code == 200


# ---- live ----------------------------------------------------------------------------------
@pytest.mark.live
def test_live_tiny_model_answers_streams_and_never_reloads(tmp_path) -> None:
    """`tts serve --small tiny --large small` (vLLM CPU): the small model loads before serving,
    the large one stays unloaded until a plan escalates; requests are answered (usage, plan,
    streaming, errors) and a second request reloads nothing (load count stays 1; timed)."""
    from tts import models

    if importlib.util.find_spec("vllm") is None or not models.is_pulled("tiny"):
        pytest.skip("needs vLLM and the tiny model (`tts models pull tiny`)")
    large = "small" if models.is_pulled("small") else "none"
    with ServeProcess("--small", "tiny", "--large", large, "--api-key", KEY,
                      startup_timeout=900, log=tmp_path / "live.log") as server:
        client = openai.OpenAI(base_url=server.url, api_key=KEY, max_retries=0, timeout=300)

        def info():
            return {m.id: m.model_extra["tts"] for m in client.models.list()}

        before = info()
        assert before["smollm2-135m"]["loaded"] is True and before["smollm2-135m"]["loads"] == 1
        if large != "none":  # lazy: loads only when a plan first escalates
            assert before["qwen2.5-coder-0.5b"] == {**before["qwen2.5-coder-0.5b"],
                                                    "loaded": False, "loads": 0}
        times = []
        for _ in range(2):
            start = time.perf_counter()
            r = chat(client, "What is 17 * 23?", model="smollm2-135m", max_tokens=24, seed=1)
            times.append(time.perf_counter() - start)
            extra = r.model_extra["tts"]
            assert r.choices[0].message.content and r.usage.completion_tokens <= 24
            assert extra["tokens"] == {"smollm2-135m": r.usage.completion_tokens}
            assert extra["plan"]["strategy"] == "vote" and extra["plan"]["options"]["role"] \
                == "small"
        stream = list(chat(client, "What is 2 + 3?", stream=True,
                           stream_options={"include_usage": True},
                           extra_body={"budget": 300, "strategy": "vote"}))
        final = [c for c in stream if c.choices and c.choices[0].finish_reason]
        assert len(final) == 1 and final[0].choices[0].finish_reason in ("stop", "length")
        plan = final[0].model_extra["tts"]
        assert plan["plan"]["strategy"] == "vote" and plan["escalated"] is False
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == \
            (plan["answer"] or "")
        assert 0 < stream[-1].usage.completion_tokens and plan["cost"] <= 300
        tight = chat(client, "What is 2 + 3?", extra_body={"budget": 1, "strategy": "vote"})
        assert tight.model_extra["tts"]["status"] == "insufficient_budget"
        with pytest.raises(openai.BadRequestError, match="budget"):
            chat(client, "What is 2 + 3?", extra_body={"budget": float("-1")})
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=server.url, api_key="wrong", max_retries=0).models.list()
        after = info()
        assert after["smollm2-135m"]["loads"] == 1  # no reload across all of the above
        if large != "none":
            assert after["qwen2.5-coder-0.5b"]["loaded"] is False
        metrics = httpx.get(f"http://127.0.0.1:{server.port}/metrics",
                            headers={"Authorization": f"Bearer {KEY}"}).text
        assert 'tts_model_loads{model="smollm2-135m"} 1.0' in metrics
        print(f"\nlive tiny: server ready after {server.ready_seconds:.1f} s (model load), "
              f"request 1 {times[0]:.2f} s, request 2 {times[1]:.2f} s")
