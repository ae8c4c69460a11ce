"""The serving scheduler without HTTP: continuous batching, equality with solve_many, failure
isolation and recovery, cancellation."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pytest

import tts
from tts.answers import count_votes
from tts.backends.replay import ReplayBackend
from tts.engine import Engine
from tts.errors import BackendError, BankError
from tts.prompts import format_question
from tts.serving.scheduler import Scheduler, ServeError
from tts.strategies import Outcome, Strategy, Vote
from tts.types import GenRequest

BANK = tts._load(str(tts.BUNDLED_BANK))
QUESTIONS = [p.question for p in list(BANK.problems.values())[:40]]


class Slow(ReplayBackend):
    """Replay with a delay per batch, a log of batches and a switch to fail."""

    def __init__(self, model, delay=0.0):
        super().__init__(BANK, model)
        self.delay = delay
        self.calls: list[list[str | None]] = []
        self.fail = False
        self.fail_after_first = False
        """Fail after generating, with the first sample of the first request attached as
        `partial` (a replica that died mid-batch); `produced` records its tokens."""
        self.produced = 0
        self.gate = threading.Event()
        self.gate.set()

    def generate(self, requests):
        self.gate.wait(10)
        self.calls.append([r.problem_id for r in requests])
        time.sleep(self.delay)
        if self.fail:
            raise BackendError("connection refused (test)")
        out = super().generate(requests)
        if self.fail_after_first:
            err = BackendError("replica died mid-batch (test)")
            err.partial = [out[0][:1]] + [[] for _ in out[1:]]
            self.produced = out[0][0].tokens
            raise err
        return out


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


def test_a_failed_batch_charges_and_reports_the_samples_it_produced() -> None:
    e = engine()
    small = e.backends["small"]
    sched = Scheduler(e)
    try:
        small.fail_after_first = True
        future = sched.submit(QUESTIONS[0], 150_000,
                              strategy=Vote(max_samples=4, wave=4, confidence=1.0))
        with pytest.raises(ServeError, match="died mid-batch") as err:
            future.result(10)
    finally:
        sched.close()
    assert small.produced > 0
    assert err.value.tokens == {"llama-2-13b": small.produced}
    assert err.value.spent == small.produced  # llama-2-13b: 1 unit per token
    assert f"{small.produced:g} units" in str(err.value)


@dataclass(frozen=True)
class Both(Strategy):
    """One step with a call to each backend (small: 4 samples, large: 1)."""

    name = "both"
    roles = ("small", "large")

    def steps(self, problem, ctx):
        ask = format_question(problem.question)
        small = ctx.call("small", GenRequest(prompt=ask, n=4, seed=ctx.seed,
                                             problem_id=problem.id))
        large = ctx.call("large", GenRequest(prompt=ask, temperature=0.0, seed=ctx.seed,
                                             problem_id=problem.id))
        a, b = yield [small, large]
        votes = count_votes([c.answer for c in a + b])
        return Outcome(answer=votes.leader, status="answered", votes=votes)


def test_a_request_fails_only_after_its_other_calls_are_back_and_charged() -> None:
    """The large call fails at once while the same step's small call is still running: the
    error comes when the small call is back, and reports its tokens."""
    e = engine()
    small, large = e.backends["small"], e.backends["large"]
    large.fail = True
    small.gate.clear()
    sched = Scheduler(e)
    try:
        future = sched.submit(QUESTIONS[0], 150_000, strategy=Both())
        deadline = time.monotonic() + 5
        while not large.calls and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.05)  # the large batch has failed by now ...
        assert not future.done()  # ... but the request waits for its small call
        small.gate.set()
        with pytest.raises(ServeError, match="gpt-4 failed: connection refused") as err:
            future.result(10)
        ref = ReplayBackend(BANK, "llama-2-13b").generate(
            [GenRequest(prompt=format_question(QUESTIONS[0]), n=4, seed=0,
                        problem_id=BANK.find(QUESTIONS[0]).id)])[0]
        assert err.value.tokens == {"llama-2-13b": sum(c.tokens for c in ref)}
        assert sched.in_flight == 0
        large.fail = False
        again = sched.submit(QUESTIONS[0], 150_000, strategy=Both()).result(10).result
        assert again.tokens["llama-2-13b"] == sum(c.tokens for c in ref) and again.tokens["gpt-4"]
    finally:
        sched.close()
