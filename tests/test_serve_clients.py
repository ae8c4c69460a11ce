"""`tts serve` against clients that misbehave, leave or crowd it, and flags that cannot work.

Real server processes on 127.0.0.1 and raw sockets: a client that disconnects stops its
request's generation (the backend is asked no more), slow-trickling clients get 408 and lose
the connection, malformed HTTP gets a 400 in OpenAI's error format, and no client makes the
server log a traceback. Flags that would start a server refusing everything (or listening
elsewhere than its banner says) exit 2 before anything starts.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import time

import pytest

import tts

from .serve_util import ServeProcess, free_port

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

PROBLEMS = list(tts._load(str(tts.BUNDLED_BANK)).problems.values())


def metric(port: int, name: str) -> float:
    """The sum of a metric's samples on a server's /metrics (0 when absent)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    return sum(float(m) for m in re.findall(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text,
                                            re.M))


def wait_until(check, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def raw_post(port: int, body: bytes, *, length: int | None = None) -> socket.socket:
    """A connected socket that has sent a chat request's head and `body`."""
    sock = socket.create_connection(("127.0.0.1", port))
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
            f"\r\nContent-Length: {len(body) if length is None else length}\r\n\r\n")
    sock.sendall(head.encode() + body)
    return sock


def reply(sock: socket.socket, timeout: float = 10.0) -> tuple[int, dict]:
    """Status and JSON body of the answer on `sock` (read until the server closes)."""
    sock.settimeout(timeout)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_a_client_that_leaves_stops_its_generation(tmp_path) -> None:
    """Front `tts serve --server` over a replay `tts serve`, stopped (SIGSTOP) so the first step
    of a request hangs; the client disconnects: the front cancels the request, and once the
    backend runs again it is asked nothing more for it (a full answer takes 16 samples, the
    first step 4)."""
    from tts.backends.openai import OpenAIBackend
    from tts.budgets import CostModel, ModelCost
    from tts.engine import Engine

    question, budget = PROBLEMS[2].question, 8000
    with ServeProcess(log=tmp_path / "backend.log") as backend, \
            ServeProcess("--server", backend.url, "--served-model", "llama-2-13b",
                         log=tmp_path / "front.log") as front:
        ref = OpenAIBackend(backend.url, model="llama-2-13b")  # what the front runs
        engine = Engine(ref, cost=CostModel({"llama-2-13b": ModelCost(1.0, 1.0)}))
        first = sum(c.request.n for c in next(engine.plan(question, budget).steps()))
        engine.solve(question, budget)
        assert first < ref.requests_sent  # a full answer takes more than the first step

        def asked() -> float:
            return metric(backend.port, "tts_requests_total")

        before = asked()
        os.kill(backend.process.pid, signal.SIGSTOP)
        try:
            sock = raw_post(front.port, json.dumps({
                "model": "tts-auto", "budget": budget,
                "messages": [{"role": "user", "content": question}]}).encode())
            wait_until(lambda: metric(front.port, "tts_in_flight") == 1, "the request")
            sock.close()  # the client leaves while the first step is generating
            wait_until(lambda: metric(front.port, "tts_client_disconnects_total") == 1,
                       "the disconnect")
            assert metric(front.port, "tts_in_flight") == 0  # dropped at once
        finally:
            os.kill(backend.process.pid, signal.SIGCONT)
        probe = httpx.post(front.url + "/chat/completions", timeout=30, json={
            "model": "llama-2-13b", "messages": [{"role": "user", "content": question}]})
        assert probe.status_code == 200  # served after the cancelled request's step
        assert asked() - before == first + 1  # its first step and the probe, nothing more


def test_slow_malformed_and_vanishing_clients(tmp_path) -> None:
    """Headers or a body trickling slower than --read-timeout: 408 in OpenAI's error format and
    the connection closed; a negative Content-Length: 400 in that format; a client vanishing
    mid-body: no traceback in the log; the server still answers."""
    log = tmp_path / "serve.log"
    with ServeProcess("--read-timeout", "0.5", log=log) as server:
        port = server.port
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")  # never ends
        start = time.monotonic()
        status, body = reply(sock)
        assert status == 408 and body["error"]["code"] == "request_timeout"
        assert "headers did not arrive within 0.5 s" in body["error"]["message"]
        assert time.monotonic() - start < 5
        status, body = reply(raw_post(port, b'{"model": "tts-', length=200))  # body stalls
        assert status == 408 and "body did not arrive within 0.5 s" in body["error"]["message"]
        status, body = reply(raw_post(port, b"", length=-5))
        assert status == 400 and body["error"]["code"] == "invalid_http_request"
        assert body["error"]["type"] == "invalid_request_error"
        raw_post(port, b'{"model": "tts-', length=200).close()  # leaves mid-body
        wait_until(lambda: metric(port, "tts_requests_total") == 2, "the vanished client")
        ok = httpx.post(server.url + "/chat/completions", json={
            "model": "tts-auto", "messages": [{"role": "user", "content": PROBLEMS[0].question}]})
        assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"] == "18"
    assert "Traceback" not in log.read_text()


BAD_FLAGS = [  # (flags, what the error must say)
    (["--port", "99999"], "--port must be in 1..65535, got 99999"),
    (["--port", "-1"], "--port must be in 1..65535"),
    (["--max-body-bytes", "-1"], "--max-body-bytes must be an integer >= 64"),
    (["--max-in-flight", "0"], "--max-in-flight must be an integer >= 1"),
    (["--max-prompt-chars", "-5"], "--max-prompt-chars must be an integer >= 1"),
    (["--host", "999.1.1.1"], "--host '999.1.1.1' is not an address"),
    (["--read-timeout", "0"], "--read-timeout must be a finite number > 0"),
    (["--default-budget", "1e10"], "--default-budget 1e\\+10 is above --max-budget"),
    (["--audit-rate", "1.5"], "`--audit-rate` must be a share of requests in \\[0, 1\\]"),
    (["--audit-bank", "x"], "--audit-bank needs --audit-rate > 0"),
    (["--bank", str(tts.BUNDLED_BANK), "--ladder", "llama-2-13b", "--audit-rate", "0.1"],
     "the engine has one model"),
]


@pytest.mark.parametrize("flags,match", BAD_FLAGS, ids=[" ".join(f)[-40:] for f, _ in BAD_FLAGS])
def test_flags_that_cannot_work_exit_2_before_starting(flags, match, monkeypatch,
                                                       capsys) -> None:
    import uvicorn

    from tts.cli import main

    def started(*args, **kw):
        raise AssertionError("the server started")

    monkeypatch.setattr(uvicorn, "run", started)
    assert main(["serve", *flags]) == 2
    err = capsys.readouterr().err
    assert re.search(match, err) and "Traceback" not in err


def test_a_busy_port_is_refused_before_loading(monkeypatch, capsys) -> None:
    import uvicorn

    from tts.cli import main

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("the server started"))
    port = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        assert main(["serve", "--port", str(port)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_a_refused_request_of_a_batch_fails_alone() -> None:
    """Replay refuses a batch holding one request for more samples than the bank has: the
    scheduler asks again request by request, so only that one fails (marked `refused`)."""
    from tts.backends.replay import ReplayBackend
    from tts.errors import BankError
    from tts.serving.scheduler import Scheduler
    from tts.types import GenRequest

    backend = ReplayBackend(tts.BUNDLED_BANK, "gpt-4")
    ok = GenRequest(prompt=PROBLEMS[0].question, problem_id=PROBLEMS[0].id, n=6, seed=0)
    too_many = GenRequest(prompt=PROBLEMS[1].question, problem_id=PROBLEMS[1].id, n=10, seed=0)
    results, _ = Scheduler._generate(backend, [ok, too_many, ok], None)
    assert len(results[0]) == 6 and results[2] == results[0]
    assert isinstance(results[1], BankError) and "the bank holds 6" in str(results[1])


def test_busy_server_answers_429_in_process() -> None:
    """The in-flight cap, on the app in-process (no socket)."""
    import asyncio

    from tts.serving.app import ServeConfig, create_app
    from tts.serving.scheduler import Scheduler

    sched = Scheduler(tts.replay_engine())
    app = create_app(sched, ServeConfig(max_in_flight=0))

    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return await c.post("/v1/chat/completions", json={"model": "tts-auto", "messages": [
                {"role": "user", "content": PROBLEMS[0].question}]})

    try:
        resp = asyncio.run(go())
    finally:
        sched.close()
    assert resp.status_code == 429 and resp.json()["error"]["code"] == "server_busy"
