"""Confidence-weighted votes and confidence filters (`Vote.weight`, `Vote.keep`; DeepConf, Fu
et al. 2025): the weighted count, the options and their errors, the replay backend's
confidences, the early stop on weighted tallies, and the vectorised evaluator agreeing bit for
bit with the engine (answers, costs, tokens, status) under hard budgets."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import tts
from tts.answers import count_votes, count_weighted_votes, kept_count
from tts.backends.replay import ReplayBackend
from tts.bank import BankMeta, Record, Sample, SampleBank, load_bank
from tts.budgets import CostModel, ModelCost
from tts.engine import Engine
from tts.errors import ValidationError
from tts.evaluate import BankArrays, evaluate
from tts.strategies import Vote
from tts.types import GenRequest, Problem

from .conftest import make_bank
from .test_evaluate import PROPERTY, assert_same, replay, seeds

# ---- the weighted count ----------------------------------------------------------------------


def test_weights_can_overturn_the_count():
    answers = ["1", "2", "2", None, "1.0"]
    confs = [9.0, 1.0, 2.0, None, 0.5]
    plain = count_votes(answers)
    assert plain.leader == "1" and plain.as_dict() == {"1": 2, "2": 2}  # tie: first seen
    w = count_weighted_votes(answers, confs)
    assert w.leader == "1" and w.weights == (9.5, 3.0) and w.total_weight == 12.5
    assert w.votes.as_dict() == {"1": 2, "2": 2} and w.votes.abstained == 1
    w = count_weighted_votes(answers, [0.1, 1.0, 2.0, None, 0.5])
    assert w.leader == "2" and w.votes.counts == (("2", 2), ("1", 2))
    assert w.effective_counts() == (3.0 * 4 / 3.6, 0.6 * 4 / 3.6)


def test_unit_weights_give_the_plain_counts():
    answers = ["3", "4", "3", "5", None, "4", "3"]
    w = count_weighted_votes(answers, [None] * 7, weighted=False)
    assert w.votes == count_votes(answers)
    assert w.effective_counts() == (3.0, 2.0)


def test_weight_ties_go_to_the_class_seen_first():
    w = count_weighted_votes(["7", "8", "8"], [2.0, 1.0, 1.0])
    assert w.leader == "7" and w.weights == (2.0, 2.0)


def test_keep_takes_the_most_confident_ties_by_sample_order():
    answers = ["1", "2", "2", "1", "3"]
    w = count_weighted_votes(answers, [1.0, 5.0, 3.0, 3.0, 0.5], weighted=False, keep=0.6)
    assert w.votes.as_dict() == {"2": 2, "1": 1} and w.dropped == 2  # 3 of 5: 5.0, 3.0, 3.0
    w = count_weighted_votes(answers, [1.0, 5.0, 3.0, 3.0, 0.5], weighted=False, keep=0.4)
    assert w.votes.as_dict() == {"2": 2}  # the tie at 3.0 goes to the earlier sample
    w = count_weighted_votes(answers, [4.0, 1.0, 1.0, 4.0, 0.5], weighted=False, keep=0.01)
    assert w.votes.as_dict() == {"1": 1} and w.dropped == 4  # at least one sample is kept
    w = count_weighted_votes([None, None], [None, None], keep=0.5)
    assert w.leader is None and w.effective_counts() == (0.0, 0.0)


def test_kept_count_is_ceil_without_float_noise():
    assert 0.14 * 50 > 7  # the noise kept_count forgives
    assert kept_count(0.14, 50) == 7 and kept_count(0.28, 25) == 7
    assert [kept_count(0.7, n) for n in (0, 1, 2, 3, 10)] == [0, 1, 2, 3, 7]
    assert [kept_count(0.5, n) for n in (1, 2, 3, 4, 16)] == [1, 1, 2, 2, 8]
    assert kept_count(1e-9, 16) == 1 and kept_count(1.0, 16) == 16


def test_weights_are_added_in_draw_order_not_compensated():
    # sum() compensates rounding since Python 3.12; the evaluator adds one sample at a time.
    confs = [1e16, 1.0, 1.0, 1.0, 1.0]
    w = count_weighted_votes(["1"] * 5, confs)
    total = 0.0
    for c in confs:
        total = total + c
    assert w.total_weight == total == w.weights[0]


def test_an_answer_without_confidence_is_an_error():
    with pytest.raises(ValueError, match="no confidence"):
        count_weighted_votes(["1", "2"], [1.0, None])
    assert count_weighted_votes(["1", None], [1.0, None]).leader == "1"


# ---- options ---------------------------------------------------------------------------------


@pytest.mark.parametrize("options, match", [
    (dict(weight="conf"), r"`weight` must be one of \['none', 'min_conf', 'logprob'\]"),
    (dict(weight=None), "`weight` must be one of"),
    (dict(keep=0), r"`keep` must be in \(0, 1\], got 0"),
    (dict(keep=0.0), r"`keep` must be in \(0, 1\]"),
    (dict(keep=1.5), r"`keep` must be in \[0.0, 1.0\], got 1.5"),
    (dict(keep=-0.1), "`keep` must be in"),
    (dict(keep=math.nan), "`keep` must be in"),
    (dict(keep="half"), "`keep` must be in"),
    (dict(keep=True), "`keep` must be in"),
])
def test_bad_options(options, match):
    with pytest.raises(ValidationError, match=match) as info:
        Vote(**options)
    assert info.value.parameter == next(iter(options))


def test_defaults_keep_plain_votes_and_their_description():
    v = Vote()
    assert v.weight == "none" and v.keep == 1.0 and not v.uses_confidence
    assert "weight" not in v.options() and "keep" not in v.options()
    w = Vote(weight="min_conf", keep=0.5)
    assert w.uses_confidence and w.options()["weight"] == "min_conf" and w.options()["keep"] == 0.5
    assert tts.strategies.make_strategy("vote", weight="logprob").weight == "logprob"


# ---- replay and the live path ----------------------------------------------------------------


def _bank(samples: list[tuple[str | None, int, float | None, float | None]],
          mode: str = "sample") -> SampleBank:
    """One problem whose small samples are (answer, tokens, logprob, min_conf), in the bank's
    stored order (replay with seed None serves them in that order)."""
    cost = CostModel({"s": ModelCost(1.0, 1.0), "l": ModelCost(10.0, 10.0)}, source="test")
    bank = SampleBank(BankMeta(name="conf", roles={"small": "s", "large": "l"}, cost=cost,
                               tokenizer="none"))
    bank.add_problem(Problem("what?", id="p0", gold="1"))
    bank.add_record(Record("p0", "s", mode, 0, tuple(
        Sample(a, t, logprob=lp, min_conf=mc) for a, t, lp, mc in samples)))
    return bank


def test_replay_returns_confidences_when_asked():
    bank = _bank([("1", 10, -0.25, 3.5), ("2", 50, -1.0, 1.5), ("3", 10, None, None)])
    backend = ReplayBackend(bank, "s")
    req = GenRequest(prompt="what?", n=3, problem_id="p0", max_tokens=20)
    plain = backend.generate([req])[0]
    assert [(c.mean_logprob, c.min_conf) for c in plain] == [(None, None)] * 3
    got = backend.generate([GenRequest(prompt="what?", n=3, problem_id="p0", max_tokens=20,
                                       logprobs=True)])[0]
    # the 50-token sample is cut at 20 tokens: its logged confidence covers text never made
    assert [(c.answer, c.mean_logprob, c.min_conf) for c in got] == [
        ("1", -0.25, 3.5), (None, None, None), ("3", None, None)]


class Recording:
    """A backend wrapper that keeps every request."""

    def __init__(self, inner):
        self.inner, self.requests = inner, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def generate(self, requests):
        self.requests.extend(requests)
        return self.inner.generate(requests)


def _engine(bank: SampleBank, seed: int | None = None) -> tuple[Engine, Recording]:
    small = Recording(ReplayBackend(bank, "s"))
    return Engine(small, None, cost=bank.meta.cost, seed=seed), small


def test_vote_asks_for_logprobs_only_when_it_needs_them():
    bank = make_bank(n_problems=1, n_small=8, confidence=True)
    for strategy, wanted in ((Vote(max_samples=8), False), (Vote(max_samples=8, keep=0.5), True),
                             (Vote(max_samples=8, weight="logprob"), True)):
        engine, small = _engine(bank, seed=1)
        engine.solve(bank.problems["p0"], 10_000, strategy=strategy)
        assert small.requests and all(r.logprobs is wanted for r in small.requests)


def test_weighted_vote_answers_the_confident_minority():
    # Two confident "1"s against three unsure "2"s: plain majority says 2, the weights say 1.
    bank = _bank([("1", 5, -0.1, 9.0), ("2", 5, -3.0, 1.0), ("2", 5, -3.0, 1.0),
                  ("1", 5, -0.1, 9.0), ("2", 5, -3.0, 1.0)])
    engine, _ = _engine(bank)
    p = bank.problems["p0"]
    assert engine.solve(p, 1000, strategy=Vote(max_samples=5, confidence=1.0)).answer == "2"
    for weight in ("min_conf", "logprob"):
        r = engine.solve(p, 1000, strategy=Vote(max_samples=5, confidence=1.0, weight=weight))
        assert r.answer == "1" and list(r.votes.items()) == [("1", 2), ("2", 3)]  # by weight
    r = engine.solve(p, 1000, strategy=Vote(max_samples=5, confidence=1.0, keep=0.4))
    assert r.answer == "1" and r.votes == {"1": 2}
    assert r.plan.options["keep"] == 0.4


def test_confidence_stops_sampling_early():
    # After 4 draws the count is 2 vs 2 (no stop); the weights say 2 confident vs 2 unsure,
    # rescaled to about 3.6 vs 0.4 effective votes: the leader is safe, so sampling stops.
    bank = _bank([("1", 5, -0.05, 12.0), ("2", 5, -2.5, 1.0), ("1", 5, -0.05, 12.0),
                  ("2", 5, -2.5, 1.0)] + [("2", 5, -2.5, 1.0)] * 8)
    engine, _ = _engine(bank)
    p = bank.problems["p0"]
    plain = engine.solve(p, 10_000, strategy=Vote(max_samples=12, wave=4, confidence=0.9))
    assert plain.samples == 8 and plain.answer == "2"  # 2 vs 2 goes on; 6 vs 2 stops
    conf = engine.solve(p, 10_000, strategy=Vote(max_samples=12, wave=4, confidence=0.9,
                                                  weight="min_conf"))
    assert conf.samples == 4 and conf.answer == "1" and conf.cost == 20
    assert any("leader safe after 4 samples (3.69 vs 0.308)" in t for t in conf.trace)
    ev = evaluate(BankArrays.from_bank(bank), Vote(max_samples=12, wave=4, confidence=0.9,
                                                   weight="min_conf"), 10_000, [None])
    assert ev.small_samples[0, 0] == 4 and ev.cost[0, 0] == 20


@pytest.mark.parametrize("strategy, option", [
    (Vote(max_samples=4, weight="min_conf"), "`weight='min_conf'` needs each sample's min_conf"),
    (Vote(max_samples=4, weight="logprob"), "`weight='logprob'` needs each sample's mean logprob"),
    (Vote(max_samples=4, keep=0.5), "`keep=0.5` needs each sample's min_conf"),
])
def test_samples_without_confidence_are_a_clear_error_on_both_paths(strategy, option):
    bank = make_bank(n_problems=2)  # no confidences, like a bank built without logprobs
    with pytest.raises(ValidationError, match=option + ", but model s gave a sample") as info:
        replay(bank, strategy, 1e6, 0, False)
    assert info.value.parameter in ("weight", "keep")
    with pytest.raises(ValidationError, match=option + ", but model s gave a sample"):
        evaluate(BankArrays.from_bank(bank), strategy, 1e6, [0])


def test_bundled_bank_has_no_confidences_and_says_so():
    bank = load_bank(tts.BUNDLED_BANK)
    with pytest.raises(ValidationError, match="model llama-2-13b gave a sample without one"):
        evaluate(BankArrays.from_bank(bank).subset([0, 1]), Vote(weight="min_conf"), 1e6)


# ---- the evaluator equals the engine -----------------------------------------------------------


@st.composite
def confidence_cases(draw):
    bank = make_bank(n_problems=draw(st.integers(1, 4)), n_small=draw(st.integers(1, 12)),
                     n_large=draw(st.integers(1, 4)), seed=draw(st.integers(0, 10_000)),
                     small_cost=draw(st.floats(0.05, 5.0)),
                     large_cost=draw(st.floats(0.5, 200.0)),
                     prompt_tokens=draw(st.integers(0, 400)),
                     max_sample_tokens=draw(st.integers(1, 600)),
                     abstain=draw(st.floats(0.0, 0.6)), confidence=True)
    n = min(len(r.samples) for (_, m, md), r in bank.records.items() if (m, md) == ("s", "sample"))
    role = draw(st.sampled_from(["small", "small", "large"]))
    if role == "large":
        n = min(len(r.samples) for (_, m, md), r in bank.records.items()
                if (m, md) == ("l", "sample"))
    plan = Vote(max_samples=draw(st.integers(1, n if draw(st.integers(0, 9)) else n + 3)),
                wave=draw(st.integers(1, 6)), max_tokens=draw(st.integers(1, 700)),
                temperature=draw(st.sampled_from([0.7, 1.0])),
                confidence=draw(st.sampled_from([0.5, 0.8, 0.95, 1.0]) | st.floats(0.5, 1.0)),
                role=role, weight=draw(st.sampled_from(["none", "min_conf", "logprob"])),
                keep=draw(st.sampled_from([1.0, 1.0, 0.5, 0.25, 0.7]) | st.floats(0.01, 1.0)))
    price = bank.meta.cost.of("s" if role == "small" else "l").output
    if draw(st.booleans()):
        budget = 10 ** draw(st.floats(0.0, 6.5))
    else:  # around the price of a wave, where waves shrink: the boundary cases
        budget = plan.max_tokens * price * draw(st.floats(0.3, 40.0))
    return bank, plan, budget


@PROPERTY
@given(case=confidence_cases(), seed=seeds, count_prompt=st.booleans())
def test_weighted_and_filtered_votes_match_replay(case, seed, count_prompt):
    """Same answers, costs, tokens and status (or the same error), and the budget is never
    exceeded (assert_same checks cost <= budget on every problem)."""
    bank, plan, budget = case
    assert_same(bank, plan, budget, seed, count_prompt)


@PROPERTY
@given(case=confidence_cases(), seed=seeds)
def test_weighted_votes_never_exceed_the_budget_on_the_engine(case, seed):
    bank, plan, budget = case
    try:
        results = replay(bank, plan, budget, seed, True)
    except tts.errors.BankError:  # more samples than the bank holds
        return
    for r in results:
        assert r.cost <= budget and (r.status == "insufficient_budget") == (r.cost == 0)


def test_subset_arrays_share_the_weighted_prefix():
    bank = make_bank(n_problems=6, n_small=10, confidence=True, seed=11)
    arrays = BankArrays.from_bank(bank)
    plan = Vote(max_samples=10, wave=3, confidence=0.9, weight="logprob", keep=0.5)
    whole = evaluate(arrays, plan, 5_000, [0, 3])
    part = evaluate(arrays.subset([1, 4]), plan, 5_000, [0, 3])
    assert (part.cost == whole.cost[:, [1, 4]]).all()
    assert (part.correct == whole.correct[:, [1, 4]]).all()
    assert part.answers(arrays.subset([1, 4])) == [[row[1], row[4]]
                                                   for row in whole.answers(arrays)]


def test_a_sweep_runs_confidence_votes_by_name():
    from tts.sweep import run_sweep

    bank = make_bank(n_problems=5, n_small=8, confidence=True, seed=2)
    plans = {"vote@8": None, "vote@8:min_conf": Vote(max_samples=8, wave=8, confidence=1.0,
                                                     weight="min_conf"),
             "vote@8:top50": Vote(max_samples=8, wave=8, confidence=1.0, keep=0.5)}
    fast = run_sweep(bank, [500, 5_000], strategies=plans, seeds=2, bootstrap=0,
                     progress=False)
    slow = run_sweep(bank, [500, 5_000], strategies=plans, seeds=2, bootstrap=0,
                     progress=False, method="solve_many")
    for name in plans:
        for budget in (500, 5_000):
            assert fast.row(budget, name).accuracy == slow.row(budget, name).accuracy
            assert fast.row(budget, name).spend_mean == slow.row(budget, name).spend_mean


QWEN_BANK = Path(__file__).resolve().parents[1] / "bench" / "results" / "qwen_gsm8k" / "bank"


@pytest.fixture(scope="module")
def qwen(tmp_path_factory):
    """A snapshot of the committed Qwen bank (its compressed samples; a background build may
    be appending to the working copy), first 12 questions."""
    if not (QWEN_BANK / "samples.jsonl.gz").exists():
        pytest.skip(f"needs the Qwen bank at {QWEN_BANK}")
    snap = tmp_path_factory.mktemp("qwen")
    for name in ("meta.json", "samples.jsonl.gz"):
        shutil.copy(QWEN_BANK / name, snap / name)
    bank = load_bank(snap)
    return bank.subset(bank.problem_ids[:12])


@pytest.mark.parametrize("plan, budget", [
    (Vote(max_samples=16, wave=4, confidence=0.95, weight="min_conf"), 4_000),
    (Vote(max_samples=16, wave=4, confidence=0.9, weight="logprob"), 100_000),
    (Vote(max_samples=8, wave=8, confidence=1.0, keep=0.5), 100_000),
    (Vote(max_samples=16, wave=3, confidence=0.8, weight="min_conf", keep=0.7), 2_500),
])
def test_real_qwen_confidences_match_replay(qwen, plan, budget):
    for seed in (0, 1):
        ev = assert_same(qwen, plan, budget, seed, True)
        assert ev is not None and ev.status.shape == (1, 12)


def test_qwen_report_reproduces_offline_votes_through_the_evaluator():
    import importlib.util
    import sys

    path = Path(__file__).resolve().parents[1] / "bench" / "qwen_report.py"
    spec = importlib.util.spec_from_file_location("qwen_report", path)
    qr = importlib.util.module_from_spec(spec)
    sys.modules["qwen_report"] = qr  # dataclasses look their module up
    spec.loader.exec_module(qr)
    bank = make_bank(n_problems=6, n_small=8, confidence=True, seed=5, abstain=0.2)
    rows = qr.confidence_votes_evaluated(bank, qr.load_modes(bank), "s", seeds=5)
    assert {r["vote"] for r in rows} == {name for name, _, _ in qr.CONF_VOTES}
    compared = [r for r in rows if "per_question_equal" in r]
    assert len(compared) == 6 and all(r["per_question_equal"] for r in compared)  # k = 4, 8
    assert all(r["evaluator_acc"] == pytest.approx(r["offline_same_orders_acc"]) for r in compared)
    no_conf = make_bank(n_problems=3, n_small=8)
    assert qr.confidence_votes_evaluated(no_conf, qr.load_modes(no_conf), "s", seeds=2) == []
