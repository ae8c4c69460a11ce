"""Audits in `tts serve` (`--audit-rate`, `--audit-bank`): a real server process over the
bundled bank, and the app in-process with a failing top model."""

from __future__ import annotations

import asyncio
import time

import pytest

import tts
from tts.answers import equivalent
from tts.bank import load_bank

from .serve_util import ServeProcess

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

BANK = tts._load(str(tts.BUNDLED_BANK))
PROBLEMS = list(BANK.problems.values())[:12]
BUDGET = 8000  # answered by Llama-2-13B votes, below GPT-4


def _chat(question: str) -> dict:
    return {"model": "tts-auto", "budget": BUDGET,
            "messages": [{"role": "user", "content": question}]}


def test_served_answers_are_audited_off_their_path(tmp_path) -> None:
    refs = tts.replay_engine().solve_many([p.question for p in PROBLEMS], BUDGET)
    with ServeProcess("--audit-rate", "1", "--audit-bank", str(tmp_path / "audits"),
                      log=tmp_path / "serve.log") as server:
        base = f"http://127.0.0.1:{server.port}"
        replies = [httpx.post(base + "/v1/chat/completions", json=_chat(p.question)).json()
                   for p in PROBLEMS]
        for reply, ref in zip(replies, refs):  # the answer and its cost are the unaudited ones
            assert reply["choices"][0]["message"]["content"] == (ref.answer or "")
            assert reply["tts"]["cost"] == pytest.approx(ref.cost)
            assert reply["tts"]["audited"] is (ref.status == "answered")
        deadline = time.monotonic() + 30
        while (snap := httpx.get(base + "/v1/tts/audit").json())["pending"] and \
                time.monotonic() < deadline:
            time.sleep(0.02)
        metrics = httpx.get(base + "/metrics").text
    answered = [(p, r) for p, r in zip(PROBLEMS, refs) if r.status == "answered"]
    disagree = sum(not equivalent(r.answer, BANK.record(p.id, "gpt-4", "greedy").samples[0]
                                  .answer) for p, r in answered)
    overall = snap["disagreement"]["overall"]
    assert (overall["audited"], overall["disagreed"]) == (len(answered), disagree)
    assert snap["disagreement"]["by_rung"]["llama-2-13b"] == overall
    assert snap["ledger"]["tokens"]["gpt-4"] > 0 and snap["dropped"] == 0
    assert f'tts_audits_total{{outcome="disagree",rung="llama-2-13b"}} {disagree}.0' in metrics
    assert 'tts_audit_disagreement{bound="low",rung="all"}' in metrics
    assert len(load_bank(tmp_path / "audits").problems) == len(answered)


def test_a_failing_top_model_drops_audits_not_requests() -> None:
    from tts.backends.replay import ReplayBackend
    from tts.engine import Engine
    from tts.errors import BackendError
    from tts.serving.app import create_app
    from tts.serving.audit import serve_auditor
    from tts.serving.scheduler import Scheduler

    class Down(ReplayBackend):
        def generate(self, requests):
            raise BackendError("gpt-4 is down")

    sched = Scheduler(Engine(ReplayBackend(BANK, "llama-2-13b"), Down(BANK, "gpt-4"),
                             cost=BANK.meta.cost))
    auditor = serve_auditor(sched, 1.0)
    app = create_app(sched, auditor=auditor)
    plain = create_app(sched)

    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://t") as c:
            out = [await c.post("/v1/chat/completions", json=_chat(p.question))
                   for p in PROBLEMS[:6]]
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=plain),
                                     base_url="http://t") as c:
            off = await c.get("/v1/tts/audit")
        return out, off

    try:
        replies, off = asyncio.run(go())
        assert auditor.wait(30)
    finally:
        sched.close()
    assert [r.status_code for r in replies] == [200] * 6
    assert auditor.snapshot()["dropped"] == sum(r.json()["tts"]["audited"] for r in replies) > 0
    assert off.status_code == 404 and off.json()["error"]["code"] == "audits_off"


def test_the_audit_bank_survives_a_killed_server(tmp_path) -> None:
    """SIGKILL mid-traffic: what was written loads, and a restarted server appends to the same
    audit bank (each question once)."""
    bank = tmp_path / "audits"

    def ask(server, problems) -> None:
        base = f"http://127.0.0.1:{server.port}"
        for p in problems:
            assert httpx.post(base + "/v1/chat/completions", json=_chat(p.question)) \
                .status_code == 200

    first = ServeProcess("--audit-rate", "1", "--audit-bank", str(bank),
                         log=tmp_path / "first.log")
    try:
        ask(first, PROBLEMS[:6])
        deadline = time.monotonic() + 30
        while not httpx.get(f"http://127.0.0.1:{first.port}/v1/tts/audit").json()[
                "disagreement"]["overall"]["audited"] and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        first.kill()  # audits may still be pending: they are lost, not half-written
    kept = set(load_bank(bank).problems)
    assert kept  # audits written as they finished
    with ServeProcess("--audit-rate", "1", "--audit-bank", str(bank),
                      log=tmp_path / "second.log") as second:
        ask(second, PROBLEMS)
        deadline = time.monotonic() + 30
        while httpx.get(f"http://127.0.0.1:{second.port}/v1/tts/audit").json()["pending"] \
                and time.monotonic() < deadline:
            time.sleep(0.02)
    again = load_bank(bank)
    refs = tts.replay_engine().solve_many([p.question for p in PROBLEMS], BUDGET)
    assert kept <= set(again.problems) and len(again.problems) == \
        sum(r.status == "answered" for r in refs)
    lines = (bank / "samples.jsonl").read_text().splitlines()
    assert len(lines) == 2 * len(again.problems)  # nothing written twice
