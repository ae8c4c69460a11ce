"""Budgets hold against a misbehaving backend: every count it reports is checked in one place
(tts.backends.contract) and the ledger refuses bad counts on its own (defence in depth).

The property tests wrap a real replay backend so that, at a random call, it breaks the
contract in one of many ways (negative, huge, float, NaN, bool counts, wrong n, more tokens
than max_tokens, negative or inflated prompt tokens, wrong types) or lies within it (fewer
tokens, a big but valid prompt). Every run must end in a BackendError exactly when the
contract was broken, and otherwise in Results that spent no more than the budget.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tts.backends.contract import MAX_COUNT, check_completions, check_prompt_tokens, \
    check_results
from tts.backends.replay import ReplayBackend
from tts.budgets import Budget, CostModel, Ledger, ModelCost
from tts.engine import Engine
from tts.errors import BackendError, ValidationError
from tts.strategies import Cascade, Chain, Escalate, Vote
from tts.types import Completion, GenRequest

from .conftest import make_bank

REQ = GenRequest(prompt="q", n=2, max_tokens=100)


def comp(**kw) -> Completion:
    base = dict(text="t", answer="1", tokens=10, prompt_tokens=5)
    base.update(kw)
    return Completion(**base)


# ---- the contract, unit by unit ---------------------------------------------------------------
def test_good_completions_pass():
    got = check_completions("m", REQ, (comp(), comp(tokens=100, text=None, answer=None,
                                                    mean_logprob=-0.5)))
    assert len(got) == 2
    assert check_prompt_tokens("m", REQ, 0) == 0


@pytest.mark.parametrize("samples, match", [
    ([comp()], "returned 1 samples for a request of n=2"),
    ([comp()] * 3, "returned 3 samples"),
    (None, "returned NoneType"),
    ([comp(), "x"], "sample 1 is str, not a Completion"),
    ([comp(), comp(tokens=-1)], "int -1 generated tokens"),
    ([comp(), comp(tokens=101)], r"int 101 generated tokens, expected an integer in \[0, 100\]"),
    ([comp(), comp(tokens=10**400)], "generated tokens"),
    ([comp(), comp(tokens=5.0)], "float 5.0 generated tokens"),
    ([comp(), comp(tokens=math.nan)], "float nan generated tokens"),
    ([comp(), comp(tokens=True)], "bool True generated tokens"),
    ([comp(), comp(prompt_tokens=-3)], "int -3 prompt tokens"),
    ([comp(), comp(prompt_tokens=2.5)], "float 2.5 prompt tokens"),
    ([comp(), comp(prompt_tokens=MAX_COUNT + 1)], "prompt tokens"),
    ([comp(), comp(mean_logprob=math.inf)], "mean_logprob inf"),
    ([comp(), comp(mean_logprob=math.nan)], "mean_logprob nan"),
    ([comp(), comp(mean_logprob="-1")], "mean_logprob '-1'"),
    ([comp(), comp(min_conf=math.nan)], "min_conf nan"),
    ([comp(), comp(answer=42)], "answer of type int"),
    ([comp(), comp(text=b"x")], "text of type bytes"),
    ([comp(), comp(finish_reason="eos")], "finish_reason 'eos'"),
])
def test_broken_completions_name_model_and_problem(samples, match):
    with pytest.raises(BackendError, match="backend of gpt-x broke the contract") as info:
        check_completions("gpt-x", REQ, samples)
    assert info.match(match)


@pytest.mark.parametrize("bad", [-1, 1.0, math.nan, True, None, "12", 10**400])
def test_broken_prompt_counts(bad):
    with pytest.raises(BackendError, match="backend of m broke the contract: prompt_tokens"):
        check_prompt_tokens("m", REQ, bad)


def test_results_must_match_requests():
    with pytest.raises(BackendError, match="1 results for 2 requests"):
        check_results("m", [REQ, REQ], [[comp(), comp()]])
    with pytest.raises(BackendError, match="returned dict"):
        check_results("m", [REQ], {})


# ---- the ledger on its own --------------------------------------------------------------------
COST = CostModel({"s": ModelCost(1.0, 1.0)})


@pytest.mark.parametrize("bad", [-1000, 1.5, math.nan, True, "5", 10**400])
def test_ledger_refuses_bad_prompt_counts(bad):
    ledger = Ledger(Budget(tokens=1000, count_prompt=True), COST)
    with pytest.raises(ValidationError, match="prompt_tokens of s must be an integer"):
        ledger.reserve("s", 1, 10, prompt_key="q", prompt_tokens=bad)
    with pytest.raises(ValidationError):
        ledger.max_samples("s", 10, prompt_key="q", prompt_tokens=bad)
    assert ledger.spent == 0 and ledger.reserved == 0


def test_ledger_refuses_absurd_sample_sizes():
    ledger = Ledger(Budget(tokens=1000), COST)
    with pytest.raises(ValidationError, match=r"max_tokens must be an integer.*401 characters"):
        ledger.max_samples("s", 10**400)
    with pytest.raises(ValidationError, match="n must be an integer"):
        ledger.reserve("s", -1, 10)
    with pytest.raises(ValidationError, match="max_tokens"):
        ledger.fits("s", 1, 0)


@pytest.mark.parametrize("generated, prompt", [
    ([-5], None), ([1.5], None), ([math.nan], None), ([True], None), ([11], None),
    ([1, 1], None), ([5], -100), ([5], 2.0), ([5], math.nan), ([5], 21),
])
def test_ledger_refuses_bad_commits_and_charges_nothing(generated, prompt):
    ledger = Ledger(Budget(tokens=1000, count_prompt=True), COST)
    r = ledger.reserve("s", 1, 10, prompt_key="q", prompt_tokens=20)
    with pytest.raises(BackendError, match="s"):
        ledger.commit(r, generated, prompt)
    assert ledger.spent == 0 and ledger.tokens == {}
    assert ledger.reserved == 30  # the reservation stays held
    assert ledger.commit(r, [10], 20) == 30


def test_negative_prompt_tokens_no_longer_buy_budget():
    """The reported overrun: a backend claiming -10**6 prompt tokens, count_prompt=True and a
    budget of 1,000 gave 32,000 generated tokens and a negative cost."""
    bank = make_bank(n_small=12, abstain=0.0)

    class Negative(ReplayBackend):
        def prompt_tokens(self, request):
            return -1_000_000

        def generate(self, requests):
            return [[dataclasses.replace(c, prompt_tokens=-1_000_000) for c in cs]
                    for cs in super().generate(requests)]

    engine = Engine(Negative(bank, "s"), cost=bank.meta.cost, count_prompt=True)
    with pytest.raises(BackendError, match="prompt_tokens\\(\\) returned int -1000000"):
        engine.solve(bank.problems["p0"], 1000, strategy=Vote(max_samples=12, max_tokens=300))
    # Only the completions lie (prompt_tokens() is honest): refused as well.
    engine = Engine(Negative(bank, "s"), cost=bank.meta.cost, count_prompt=False)
    with pytest.raises(BackendError, match="int -1000000 prompt tokens"):
        engine.solve(bank.problems["p0"], 1000, strategy=Vote(max_samples=12, max_tokens=300))


# ---- property: misbehaving backends never overrun -----------------------------------------
class Misbehaving:
    """A replay backend that breaks (or bends) its contract at generate call `at`."""

    def __init__(self, inner: ReplayBackend, fault: str, value, at: int):
        self.inner, self.fault, self.value, self.at = inner, fault, value, at
        self.model, self.cost, self.lookup = inner.model, inner.cost, inner.lookup
        self.calls = 0
        self.violated = False
        """Whether the backend has returned something outside the contract."""
        self.inconsistent = False
        """Whether it reported more prompt tokens after generating than before (refused when
        that prompt is being charged, harmless otherwise)."""

    def prompt_tokens(self, request):
        count = self.inner.prompt_tokens(request)
        if self.fault == "prompt_count":
            self.violated |= not _valid_count(self.value)
            # A valid but bigger count is fine; with a smaller one the completions report more
            # than was reserved, refused when that prompt is charged.
            self.inconsistent |= _valid_count(self.value) and self.value < count
            return self.value
        return count

    def generate(self, requests):
        out = [list(x) for x in self.inner.generate(requests)]
        k, self.calls = self.calls, self.calls + 1
        if k != self.at or self.fault == "prompt_count":
            return out
        first, req = out[0], requests[0]
        v = self.value
        if self.fault == "tokens":
            first[0] = dataclasses.replace(first[0], tokens=v)
            self.violated = not (_valid_count(v) and v <= req.max_tokens)
        elif self.fault == "fewer_tokens":  # a lie within the contract
            out[0] = [dataclasses.replace(c, tokens=c.tokens // 2) for c in first]
        elif self.fault == "completion_prompt":
            out[0] = [dataclasses.replace(c, prompt_tokens=v) for c in first]
            self.violated = not _valid_count(v)
            self.inconsistent = _valid_count(v) and v > self.inner.prompt_tokens(req)
        elif self.fault == "missing_sample":
            out[0] = first[:-1]
            self.violated = True
        elif self.fault == "extra_sample":
            out[0] = first + [first[0]]
            self.violated = True
        elif self.fault == "missing_result":
            out = out[:-1]
            self.violated = True
        elif self.fault == "extra_result":
            out = out + [first]
            self.violated = True
        elif self.fault == "logprob":
            first[0] = dataclasses.replace(first[0], mean_logprob=v)
            self.violated = True
        elif self.fault == "answer":
            first[0] = dataclasses.replace(first[0], answer=v)
            self.violated = True
        return out


def _valid_count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_COUNT


counts = st.one_of(
    st.integers(-10**6, -1), st.integers(0, 2000), st.integers(2001, 10**9),
    st.just(10**400), st.just(MAX_COUNT), st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(), st.none(), st.just("12"))
faults = st.one_of(
    st.tuples(st.sampled_from(["tokens", "completion_prompt", "prompt_count"]), counts),
    st.tuples(st.sampled_from(["missing_sample", "extra_sample", "missing_result",
                               "extra_result", "fewer_tokens"]), st.none()),
    st.tuples(st.just("logprob"), st.sampled_from([math.nan, math.inf, -math.inf, "x"])),
    st.tuples(st.just("answer"), st.sampled_from([7, 1.5, b"7", ["7"]])),
)
banks = st.builds(  # random synthetic banks holding enough samples for every plan below
    make_bank, n_problems=st.integers(1, 3), n_small=st.integers(4, 8), n_large=st.integers(1, 3),
    seed=st.integers(0, 10_000), small_cost=st.floats(0.05, 5.0),
    large_cost=st.floats(5.0, 200.0), prompt_tokens=st.integers(0, 400),
    max_sample_tokens=st.integers(1, 600), abstain=st.floats(0.0, 0.6))
plans = st.sampled_from([
    Vote(max_samples=4, wave=2, max_tokens=300), Vote(max_samples=1, max_tokens=50),
    Cascade(max_samples=2, wave=1, max_tokens=200, escalate_below=1.0, large_max_tokens=300),
    Escalate(samples=1, max_tokens=200), Chain(max_tokens=600, min_tokens=10),
])


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bank=banks, budget=st.floats(2.0, 6.0).map(lambda x: 10 ** x), count_prompt=st.booleans(),
       fault=faults, at=st.sampled_from([0, 0, 0, 1, 2]), large=st.booleans(), plan=plans,
       seed=st.integers(0, 100))
def test_misbehaving_backend_gets_backend_error_or_budget_holds(bank, budget, count_prompt,
                                                                 fault, at, large, plan, seed):
    small, big = ReplayBackend(bank, "s"), ReplayBackend(bank, "l")
    large = (large and "large" in plan.roles) or "small" not in plan.roles
    bad = Misbehaving(big if large else small, fault[0], fault[1], at)
    engine = Engine(small if large else bad, bad if large else big, cost=bank.meta.cost,
                    seed=seed, count_prompt=count_prompt)
    problems = [bank.problems[p] for p in bank.problem_ids]
    try:
        results = engine.solve_many(problems, Budget(tokens=budget, count_prompt=count_prompt),
                                    strategy=plan)
    except BackendError as exc:
        event("BackendError")
        assert bad.violated or bad.inconsistent, f"BackendError without a broken contract: {exc}"
        assert bad.model in str(exc)
        return
    assert not bad.violated, f"broken contract ({fault}) went unnoticed"
    event("answered" if bad.calls > bad.at or fault[0] == "prompt_count" else "fault not reached")
    for r in results:
        assert 0 <= r.cost <= budget
        assert all(isinstance(t, int) and t >= 0 for t in r.tokens.values())
