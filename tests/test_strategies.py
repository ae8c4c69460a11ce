"""Budgets are hard limits: property tests over random budgets, prices, waves and banks."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tts.backends.replay import ReplayBackend
from tts.budgets import Budget
from tts.engine import Engine
from tts.strategies import Cascade, Chain, Escalate, Vote, leader_confidence, make_strategy
from tts.errors import UnknownNameError, ValidationError

from .conftest import bank_strategy as banks
from .conftest import make_bank

PROPERTY = settings(max_examples=1000, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

budgets = st.floats(1.0, 100_000.0)
seeds = st.one_of(st.none(), st.integers(0, 2**31))


def run_twice(bank, strategy, budget, seed, count_prompt):
    engine = Engine(ReplayBackend(bank, "s"), ReplayBackend(bank, "l"), cost=bank.meta.cost,
                    seed=seed, count_prompt=count_prompt)
    problems = [bank.problems[p] for p in bank.problem_ids]
    first = engine.solve_many(problems, Budget(tokens=budget, count_prompt=count_prompt),
                              strategy=strategy)
    again = engine.solve_many(problems, Budget(tokens=budget, count_prompt=count_prompt),
                              strategy=strategy)
    return first, again


def check(results, again, budget):
    assert results == again  # same seed, same Results
    for r in results:
        assert r.cost <= budget
        if r.status == "insufficient_budget":
            assert r.cost == 0 and r.answer is None and not r.tokens


@PROPERTY
@given(bank=banks, budget=budgets, seed=seeds, count_prompt=st.booleans(),
       max_samples=st.integers(1, 12), wave=st.integers(1, 6), max_tokens=st.integers(1, 700),
       confidence=st.floats(0.5, 1.0))
def test_vote_never_exceeds_budget(bank, budget, seed, count_prompt, max_samples, wave,
                                   max_tokens, confidence):
    n_small = len(bank.record("p0", "s", "sample").samples)
    strategy = Vote(max_samples=min(max_samples, n_small),
                    wave=wave, max_tokens=max_tokens, confidence=confidence)
    results, again = run_twice(bank, strategy, budget, seed, count_prompt)
    check(results, again, budget)
    for r in results:
        assert r.samples <= strategy.max_samples


@PROPERTY
@given(bank=banks, budget=budgets, seed=seeds, count_prompt=st.booleans(),
       samples=st.integers(1, 4), max_tokens=st.integers(1, 700))
def test_escalate_never_exceeds_budget(bank, budget, seed, count_prompt, samples, max_tokens):
    n_large = len(bank.record("p0", "l", "sample").samples)
    strategy = Escalate(samples=min(samples, n_large), max_tokens=max_tokens)
    results, again = run_twice(bank, strategy, budget, seed, count_prompt)
    check(results, again, budget)


@PROPERTY
@given(bank=banks, budget=budgets, seed=seeds, count_prompt=st.booleans(),
       max_samples=st.integers(1, 12), wave=st.integers(1, 6), max_tokens=st.integers(1, 700),
       escalate_below=st.floats(0.0, 1.0), keep=st.booleans(),
       large_max_tokens=st.integers(1, 700))
def test_cascade_never_exceeds_budget(bank, budget, seed, count_prompt, max_samples, wave,
                                      max_tokens, escalate_below, keep, large_max_tokens):
    n_small = len(bank.record("p0", "s", "sample").samples)
    strategy = Cascade(max_samples=min(max_samples, n_small), wave=wave, max_tokens=max_tokens,
                       escalate_below=escalate_below, keep_for_large=keep,
                       large_max_tokens=large_max_tokens)
    results, again = run_twice(bank, strategy, budget, seed, count_prompt)
    check(results, again, budget)


@PROPERTY
@given(bank=banks, budget=budgets, seed=seeds, count_prompt=st.booleans(),
       max_tokens=st.integers(1, 5000), min_tokens=st.integers(1, 200))
def test_chain_never_exceeds_budget(bank, budget, seed, count_prompt, max_tokens, min_tokens):
    strategy = Chain(max_tokens=max_tokens, min_tokens=min_tokens)
    results, again = run_twice(bank, strategy, budget, seed, count_prompt)
    check(results, again, budget)


def test_vote_stops_early_when_leader_safe():
    bank = make_bank(n_small=12, abstain=0.0, seed=3)
    for rec in list(bank.records.values()):
        if rec.model == "s" and rec.mode == "sample":
            bank.add_record(type(rec)(rec.problem_id, "s", "sample", rec.prompt_tokens,
                                      tuple(type(s)("7", s.tokens) for s in rec.samples)))
    engine = Engine(ReplayBackend(bank, "s"), cost=bank.meta.cost)
    r = engine.solve(bank.problems["p0"], 1e6, strategy=Vote(max_samples=12, wave=4))
    assert r.samples == 4 and r.answer == "7" and "leader safe" in r.trace[0]
    r = engine.solve(bank.problems["p0"], 1e6, strategy=Vote(max_samples=12, wave=4,
                                                             confidence=1.0))
    assert r.samples == 12


def test_leader_confidence_is_beta_tail():
    assert leader_confidence(0, 0) == pytest.approx(0.5)
    assert leader_confidence(4, 0) == pytest.approx(1 - 0.5 ** 5)
    assert leader_confidence(5, 5) == pytest.approx(0.5)
    assert leader_confidence(10, 1) > leader_confidence(6, 1) > leader_confidence(6, 3)


def test_registry_errors_name_choices():
    with pytest.raises(UnknownNameError, match="unknown strategy 'best_of_n'.*cascade"):
        make_strategy("best_of_n")
    with pytest.raises(ValidationError, match="no option.*'n_samples'"):
        make_strategy("vote", n_samples=3)
    with pytest.raises(ValidationError, match="`wave` must be an integer >= 1, got 0"):
        make_strategy("vote", wave=0)
    with pytest.raises(ValidationError, match="escalate_below"):
        Cascade(escalate_below=1.5)


def test_chain_replays_the_mode_it_names():
    """Budget-forced chains are stored per length ("chain-1024"); Chain(mode=...) replays
    that mode, and the vectorised evaluator agrees with the engine."""
    from tts.bank import Record
    from tts.errors import BankError
    from tts.evaluate import BankArrays, evaluate

    bank = make_bank(n_problems=4, seed=5)
    for pid in list(bank.problems):
        rec = bank.records.pop((pid, "s", "chain"))
        bank.add_record(Record(pid, "s", "chain-1024", rec.prompt_tokens, rec.samples))
    plan = Chain(max_tokens=1024, mode="chain-1024")
    engine = Engine(ReplayBackend(bank, "s"), ReplayBackend(bank, "l"), count_prompt=True)
    results = engine.solve_many([bank.problems[p] for p in bank.problem_ids], 5_000,
                                strategy=plan)
    ev = evaluate(BankArrays.from_bank(bank), plan, 5_000, [0], count_prompt=True)
    assert [r.cost for r in results] == ev.cost[0].tolist()
    assert [r.answer for r in results] == ev.answers(BankArrays.from_bank(bank))[0]
    with pytest.raises(BankError, match="chain"):
        Engine(ReplayBackend(bank, "s")).solve(bank.problems["p0"], 5_000,
                                                   strategy=Chain(max_tokens=1024))
