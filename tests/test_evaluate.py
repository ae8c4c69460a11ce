"""The vectorised evaluator agrees exactly with Engine.solve_many on replay (answers, costs,
tokens, status, escalation), for every strategy option, budget and seed; and it is fast."""


import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tts
from tts.backends.replay import ReplayBackend
from tts.bank import Record, Sample, load_bank
from tts.budgets import Budget
from tts.engine import Engine
from tts.errors import BankError, ValidationError
from tts.evaluate import BankArrays, evaluate, tile_bank
from tts.strategies import Adaptive, Cascade, Chain, Escalate, Vote

from .conftest import bank_strategy as banks
from .conftest import make_bank

PROPERTY = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def replay(bank, plan, budget, seed, count_prompt, *, policy=False):
    small = ReplayBackend(bank, bank.meta.roles["small"])
    large_name = bank.meta.roles.get("large")
    large = ReplayBackend(bank, large_name) if large_name in bank.models else None
    engine = Engine(small, large, cost=bank.meta.cost, seed=seed, count_prompt=count_prompt,
                    policy=plan if policy else None)
    problems = [bank.problems[p] for p in bank.problem_ids]
    return engine.solve_many(problems, Budget(tokens=budget, count_prompt=count_prompt),
                             strategy=None if policy else plan)


def outcome(fn):
    try:
        return fn(), None
    except (BankError, ValidationError) as exc:
        return None, exc


def assert_same(bank, plan, budget, seed, count_prompt, *, policy=False, arrays=None):
    """Both paths raise the same error type, or agree field by field on every problem."""
    results, err_r = outcome(lambda: replay(bank, plan, budget, seed, count_prompt,
                                            policy=policy))
    arrays = arrays or BankArrays.from_bank(bank)
    ev, err_e = outcome(lambda: evaluate(arrays, plan, budget, [seed],
                                         count_prompt=count_prompt))
    assert type(err_r) is type(err_e), (err_r, err_e)
    if err_r is not None:
        return None
    answers = ev.answers(arrays)[0]
    status = ev.status_names()[0]
    for i, r in enumerate(results):
        got = dict(answer=answers[i], cost=float(ev.cost[0, i]), status=status[i],
                   escalated=bool(ev.escalated[0, i]),
                   tokens={m: int(t[0, i]) for m, t in ev.tokens.items() if t[0, i]})
        want = dict(answer=r.answer, cost=r.cost, status=r.status, escalated=r.escalated,
                    tokens={m: t for m, t in r.tokens.items() if t})
        assert got == want, (i, plan, budget, seed, count_prompt)
        assert ev.cost[0, i] <= budget
        assert ev.correct[0, i] == tts.answers.is_correct(r.answer, bank.problems[
            r.problem_id].gold)
        if r.difficulty is not None:
            assert ev.difficulty[0, i] == pytest.approx(r.difficulty, rel=1e-9, abs=1e-12)
    return ev


budgets = st.floats(0.0, 6.5).map(lambda x: 10 ** x)  # 1 .. 3e6 units, log-uniform
seeds = st.one_of(st.none(), st.integers(0, 2**31))


@st.composite
def plans(draw, n_small=12, n_large=4):
    """Any strategy with any options; sample counts mostly within the bank (sometimes beyond,
    which must raise the same BankError on both paths)."""
    small = st.integers(1, n_small) if draw(st.integers(0, 9)) else st.integers(1, n_small + 4)
    large = st.integers(1, n_large) if draw(st.integers(0, 9)) else st.integers(1, n_large + 2)
    tokens = st.integers(1, 700)
    temp = st.sampled_from([0.7, 1.0])
    kind = draw(st.sampled_from(["vote", "escalate", "cascade", "adaptive", "chain"]))
    if kind == "vote":
        return Vote(max_samples=draw(small), wave=draw(st.integers(1, 6)),
                    max_tokens=draw(tokens), temperature=draw(temp),
                    confidence=draw(st.floats(0.5, 1.0)),
                    role=draw(st.sampled_from(["small", "small", "large"])))
    if kind == "escalate":
        return Escalate(samples=draw(large), max_tokens=draw(tokens),
                        temperature=draw(st.sampled_from([0.7, 1.0, 0.0])))
    if kind == "cascade":
        return Cascade(max_samples=draw(small), wave=draw(st.integers(1, 6)),
                       max_tokens=draw(tokens), temperature=draw(temp),
                       confidence=draw(st.floats(0.5, 1.0)),
                       escalate_below=draw(st.floats(0.0, 1.0)), large_samples=draw(large),
                       large_max_tokens=draw(tokens), keep_for_large=draw(st.booleans()))
    if kind == "adaptive":
        return Adaptive(probe=draw(st.integers(1, 6)), wave=draw(st.integers(1, 6)),
                        max_samples=draw(small), max_tokens=draw(tokens),
                        confidence=draw(st.floats(0.5, 1.0)),
                        escalate_above=draw(st.floats(0.0, 1.0)),
                        escalate_early_above=draw(st.floats(0.0, 1.0)),
                        weights=draw(st.tuples(*[st.floats(-8, 8)] * 7)),
                        prior=draw(st.floats(-3, 3)), large=draw(st.booleans()),
                        large_samples=draw(large), large_max_tokens=draw(tokens),
                        keep_for_large=draw(st.booleans()))
    return Chain(max_tokens=draw(st.integers(1, 800)), min_tokens=draw(st.integers(1, 200)),
                 role=draw(st.sampled_from(["small", "large"])),
                 answer_tokens=draw(st.sampled_from([0, 0, 16, 64])),
                 max_waits=draw(st.integers(0, 2)))


@st.composite
def cases(draw):
    bank = draw(banks)
    n_small = min(len(r.samples) for (_, m, md), r in bank.records.items()
                  if (m, md) == ("s", "sample"))
    n_large = min(len(r.samples) for (_, m, md), r in bank.records.items()
                  if (m, md) == ("l", "sample"))
    plan = draw(plans(n_small, n_large))
    if draw(st.booleans()):
        return bank, plan, draw(budgets)
    # A budget around the price of the plan's calls, where waves shrink and escalation
    # becomes affordable or not: the interesting boundary cases.
    cost = bank.meta.cost
    mt = getattr(plan, "max_tokens", 100)
    scale = mt * cost.of("s").output
    if isinstance(plan, (Escalate, Cascade, Adaptive)) or getattr(plan, "role", "") == "large":
        scale = getattr(plan, "large_max_tokens", mt) * cost.of("l").output + scale
    return bank, plan, scale * draw(st.floats(0.3, 40.0))


@PROPERTY
@given(case=cases(), seed=seeds, count_prompt=st.booleans())
def test_matches_replay_on_synthetic_banks(case, seed, count_prompt):
    bank, plan, budget = case
    assert_same(bank, plan, budget, seed, count_prompt)


@pytest.fixture(scope="module")
def bundled():
    bank = load_bank(tts.BUNDLED_BANK)
    return bank, BankArrays.from_bank(bank)


@pytest.mark.parametrize("plan, budget, count_prompt", [
    (Vote(max_samples=20, wave=4), 2_000, False),
    (Vote(max_samples=20, wave=3, confidence=0.9), 700, True),
    (Escalate(), 200_000, True),
    (Escalate(samples=3), 400_000, False),
    (Cascade(), 200_000, False),
    (Cascade(keep_for_large=True, max_tokens=100), 130_000, True),
    (Adaptive(confidence=0.95), 150_000, True),
    (Adaptive(probe=2, escalate_early_above=0.9, large_max_tokens=256), 70_000, False),
])
def test_matches_replay_on_bundled_bank(bundled, plan, budget, count_prompt):
    bank, arrays = bundled
    for seed in (0, 7):
        ev = assert_same(bank, plan, budget, seed, count_prompt, arrays=arrays)
        assert ev is not None and ev.correct.shape == (1, 300)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=plans(20, 6), budget=st.floats(2.0, 6.0).map(lambda x: 10 ** x), seed=seeds,
       count_prompt=st.booleans())
def test_matches_replay_on_bundled_subset(bundled, plan, budget, seed, count_prompt):
    bank, arrays = bundled
    idx = list(range(0, 300, 10))
    sub_bank = bank.subset([bank.problem_ids[i] for i in idx])
    assert_same(sub_bank, plan, budget, seed, count_prompt, arrays=arrays.subset(idx))


def test_subset_view_equals_fresh_arrays(bundled):
    bank, arrays = bundled
    idx = [5, 1, 200, 17]
    sub = arrays.subset(idx)
    fresh = BankArrays.from_bank(bank, [bank.problem_ids[i] for i in idx])
    a = evaluate(sub, Cascade(), 200_000, seeds=[0, 1])
    b = evaluate(fresh, Cascade(), 200_000, seeds=[0, 1])
    assert np.array_equal(a.cost, b.cost) and np.array_equal(a.correct, b.correct)


def test_chain_without_chain_samples_raises_the_replay_error(bundled):
    bank, arrays = bundled
    with pytest.raises(BankError) as from_replay:
        tts.replay_engine().solve_many([bank.problems["gsm8k-test-0"]], 10_000, strategy=Chain())
    with pytest.raises(BankError) as from_eval:
        evaluate(arrays, Chain(), 10_000)
    assert str(from_eval.value) == str(from_replay.value)


def test_too_many_samples_is_a_bank_error(bundled):
    _, arrays = bundled
    with pytest.raises(BankError, match="bank holds 20"):
        evaluate(arrays, Vote(max_samples=24, wave=8, confidence=1.0), 10_000)


def test_large_strategy_without_large_model_is_a_clear_error():
    bank = make_bank()
    bank.meta = type(bank.meta)(name="x", roles={"small": "s"}, cost=bank.meta.cost,
                                tokenizer="none")
    with pytest.raises(ValidationError, match="needs a large model"):
        evaluate(BankArrays.from_bank(bank), Escalate(), 10_000)


def test_bad_arguments():
    arrays = BankArrays.from_bank(make_bank())
    with pytest.raises(ValidationError, match="budget"):
        evaluate(arrays, Vote(), -1)
    with pytest.raises(ValidationError, match="seeds"):
        evaluate(arrays, Vote(), 100, seeds=[])
    with pytest.raises(ValidationError, match="Strategy or a Policy"):
        evaluate(arrays, "vote", 100)
    with pytest.raises(ValidationError, match="BankArrays"):
        evaluate(make_bank(), Vote(), 100)


def test_non_transitive_answers_are_refused():
    bank = make_bank(n_problems=1)
    # a ~ b (relative 8e-7) and b ~ c (same 6 significant digits), but a !~ c.
    answers = ["1.2345645", "1.2345665", "1.2345655"]
    bank.add_record(Record("p0", "s", "sample", 5, tuple(Sample(a, 10) for a in answers)))
    with pytest.raises(BankError, match="not transitive"):
        BankArrays.from_bank(bank)


def test_a_tiled_bank_evaluates_every_copy_as_its_own_question(bundled):
    """A 1,000-problem tiled bank (bench/tune_speed.py times trials over it): every copy is
    evaluated, and copies draw other sample orders than their originals."""
    bank, _ = bundled
    arrays = BankArrays.from_bank(tile_bank(bank, 1000))
    ev = evaluate(arrays, Adaptive(probe=4, max_samples=16, confidence=0.95), 150_000,
                  seeds=[0])
    assert ev.correct.shape == (1, 1000) and len(set(arrays.problem_ids)) == 1000
    assert not (ev.cost[0, :300] == ev.cost[0, 300:600]).all()


def test_chain_budget_forcing_on_texts_is_refused_not_guessed():
    bank = make_bank(n_problems=2)
    for pid in bank.problem_ids:
        rec = bank.record(pid, "s", "chain")
        bank.add_record(Record(pid, "s", "chain", rec.prompt_tokens,
                               tuple(Sample(s.answer, s.tokens, "some text")
                                     for s in rec.samples)))
    arrays = BankArrays.from_bank(bank)
    evaluate(arrays, Chain(max_tokens=500, min_tokens=1), 10_000)  # no forcing: fine
    with pytest.raises(ValidationError, match="budget forcing"):
        evaluate(arrays, Chain(max_tokens=500, min_tokens=1, answer_tokens=16), 10_000)
