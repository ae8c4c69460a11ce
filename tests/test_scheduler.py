"""The serving scheduler without HTTP: continuous batching, equality with solve_many, failure
isolation and recovery, cancellation."""

from __future__ import annotations

import threading
import time

import pytest

import tts
from tts.backends.replay import ReplayBackend
from tts.engine import Engine
from tts.errors import BackendError, BankError
from tts.serving.scheduler import Scheduler, ServeError
from tts.strategies import Vote

BANK = tts._load(str(tts.BUNDLED_BANK))
QUESTIONS = [p.question for p in list(BANK.problems.values())[:40]]


class Slow(ReplayBackend):
    """Replay with a delay per batch, a log of batches and a switch to fail."""

    def __init__(self, model, delay=0.0):
        super().__init__(BANK, model)
        self.delay = delay
        self.calls: list[list[str | None]] = []
        self.fail = False
        self.gate = threading.Event()
        self.gate.set()

    def generate(self, requests):
        self.gate.wait(10)
        self.calls.append([r.problem_id for r in requests])
        time.sleep(self.delay)
        if self.fail:
            raise BackendError("connection refused (test)")
        return super().generate(requests)


def engine(delay=0.0):
    roles = BANK.meta.roles
    return Engine(Slow(roles["small"], delay), Slow(roles["large"], delay), cost=BANK.meta.cost)


def test_results_equal_solve_many() -> None:
    sched = Scheduler(engine())
    try:
        served = [f.result(10) for f in [sched.submit(q, 150_000) for q in QUESTIONS]]
    finally:
        sched.close()
    ref = tts.solve_many(QUESTIONS, 150_000)
    assert [s.result.answer for s in served] == [r.answer for r in ref]
    assert [s.result.cost for s in served] == [r.cost for r in ref]
    assert [s.result.tokens for s in served] == [r.tokens for r in ref]
    assert all(s.generated == sum(r.tokens.values()) for s, r in zip(served, ref))


def test_a_new_request_joins_the_next_batch() -> None:
    e = engine(delay=0.05)
    small = e.backends["small"]
    sched = Scheduler(e)
    try:
        small.gate.clear()  # hold the first batch until the second request has arrived
        three_waves = Vote(max_samples=12, wave=4, confidence=1.0)
        a = sched.submit(QUESTIONS[0], 150_000, strategy=three_waves)
        time.sleep(0.05)
        b = sched.submit(QUESTIONS[1], 150_000, strategy=three_waves)
        small.gate.set()
        a.result(10), b.result(10)
    finally:
        sched.close()
    ids = [BANK.find(q).id for q in QUESTIONS[:2]]
    assert small.calls[0] == [ids[0]]       # a's first step went out alone ...
    assert ids[1] in small.calls[1]          # ... and b joined the very next batch,
    assert ids[0] in small.calls[1]          # together with a's second step
    assert len(small.calls) == 4             # a: 3 waves, b: 3 waves, overlapped


def test_a_failed_batch_fails_only_its_requests_and_the_loop_recovers() -> None:
    e = engine()
    small = e.backends["small"]
    sched = Scheduler(e)
    try:
        ok = sched.submit(QUESTIONS[0], 150_000).result(10)
        small.fail = True
        futures = [sched.submit(q, 150_000) for q in QUESTIONS[1:6]]
        for f in futures:
            with pytest.raises(ServeError, match="connection refused") as err:
                f.result(10)
            assert err.value.status == 503 and "tokens already spent" in str(err.value)
        small.fail = False
        again = sched.submit(QUESTIONS[1], 150_000).result(10)
        assert again.result.status == "answered" and ok.result.status == "answered"
        assert sched.in_flight == 0
    finally:
        sched.close()


def test_bad_input_raises_at_submit_and_cancel_drops() -> None:
    e = engine(delay=0.05)
    sched = Scheduler(e)
    try:
        with pytest.raises(BankError):
            sched.submit("What is 2+2?", 1000)
        f = sched.submit(QUESTIONS[2], 150_000, strategy="vote")
        time.sleep(0.01)
        f.cancel()
        deadline = time.monotonic() + 5
        while sched.in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sched.in_flight == 0
    finally:
        sched.close()
