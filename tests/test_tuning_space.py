"""The tuner's search space (`tts.tuning.space`): mixed-representation votes where a lower
model has two sampled modes (MoT DATE: CoT and PoT), the space of one-mode banks and
named-mode ladders exactly as it was before them, and the engine equal to the evaluator on
what the space suggests."""

from pathlib import Path

import optuna
import pytest

import tts
from tts.backends.replay import ReplayBackend
from tts.bank import load_bank
from tts.evaluate import BankArrays, evaluate
from tts.strategies import Ladder
from tts.tuning.data import prepare_ladder
from tts.tuning.search import search
from tts.tuning.space import baselines, mixes, suggest_rungs

from .test_ladder import assert_same_as_evaluator

DATE_BANK = load_bank(tts.BUNDLED_DATE_BANK)
DATE = BankArrays.from_bank(DATE_BANK)
GSM8K = BankArrays.from_bank(load_bank(tts.BUNDLED_BANK))
QWEN = Path(__file__).resolve().parents[1] / "bench/results/qwen_gsm8k/bank"
TWO = ["gpt-3.5-turbo", "gpt-4"]


def _trials(data, n=40):
    """(params, rungs) of `n` random trials of the space (RandomSampler, seed 0)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    out = []
    for _ in range(n):
        trial = study.ask()
        rungs = suggest_rungs(trial, data)
        study.tell(trial, 0.0)
        out.append((trial.params, rungs))
    return out


PLAIN = ["large_samples", "large_vote", "small_check", "small_climb_above", "small_confidence",
         "small_floor", "small_max_samples", "small_mode", "small_score", "small_stop_early",
         "small_wave"]
CASCADES = ["cascade-small-sample", "cascade-small-sample@2/0.5", "cascade-small-sample@4/0.5",
            "cascade-small-sample@8/0.5", "top-model"]


@pytest.mark.parametrize("arrays, ladder, params, plans", [
    # one sampled mode for the lower model (MoT GSM8K's Llama-2: CoT only)
    (GSM8K, ["llama-2-13b", "gpt-4"], PLAIN, CASCADES),
    # our Qwen pair: one sampled mode (chains and greedy answers are not votes), confidences
    (QWEN, ["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"],
     sorted([*PLAIN, "small_keep", "small_vote_weight"]), CASCADES),
    # two modes, but the ladder names the lower rung's: nothing to mix
    (DATE, ["gpt-3.5-turbo:pot", "gpt-4"],
     ["large_samples", "large_vote"] + [f"small_pot_{k}" for k in (
         "check", "check_samples", "climb_above", "confidence", "floor", "max_samples",
         "score", "stop_early", "wave")],
     ["cascade-small-pot", "cascade-small-pot@2/0.5", "cascade-small-pot@4/0.5",
      "cascade-small-pot@8/0.5", "top-model"]),
])
def test_without_two_searched_modes_the_space_is_as_before(arrays, ladder, params, plans):
    """The parameter names and fixed plans pinned here are those of the space before mixed
    votes existed (checked against it when they were added): these studies, their names and
    their results do not change."""
    if isinstance(arrays, Path):  # 40 questions: its arrays are slow to build
        bank = load_bank(arrays)
        arrays = BankArrays.from_bank(bank.subset(bank.problem_ids[:40]))
    data = prepare_ladder(arrays, ladder, budget=262144, seeds=(0,))
    assert not mixes(data)
    trials = _trials(data)
    assert sorted({k for params_, _ in trials for k in params_}) == params
    assert not any(r.mix_mode or r.climb_split for _, rungs in trials for r in rungs)
    assert sorted(baselines(data)) == plans
    run = search(data, trials=2)
    assert not run.study_name.endswith("-mix")


def test_two_sampled_modes_search_mixed_votes():
    data = prepare_ladder(DATE, TWO, budget=1e6, seeds=(0,))
    assert mixes(data) and data.modes["small"] == ["pot", "sample"]
    trials = _trials(data, 60)
    names = {k for params, _ in trials for k in params}
    assert {"small_mixed", "small_mix_samples", "small_climb_split"} <= names
    mixed = [rungs[0] for params, rungs in trials if params["small_mixed"]]
    plain = [rungs[0] for params, rungs in trials if not params["small_mixed"]]
    assert mixed and plain and all(r.mix_mode is None for r in plain)
    for r in mixed:  # the other representation, plainly voted, no check
        assert {r.mode, r.mix_mode} == {"pot", "sample"}
        assert 2 <= r.max_samples <= 80 and r.check_mode is None and r.weight == "none"
    assert {r.climb_split for r in mixed} == {False, True}
    # a trial's params rebuild its rungs (how the tuner cross-fits a plan)
    for params, rungs in trials:
        assert suggest_rungs(optuna.trial.FixedTrial(params), data) == rungs
    # the fixed plans are the cascades they were (MoT-1D-Vote is not one: `baselines`)
    assert sorted(baselines(data)) == [f"cascade-small-{m}{k}" for m in ("pot", "sample")
                                       for k in ("", "@2/0.5", "@4/0.5", "@8/0.5")] + [
        "top-model"]
    assert search(data, trials=2).study_name.endswith("-mix")


def test_three_tier_date_mixes_both_lower_models():
    data = prepare_ladder(DATE, ["llama-2-13b", *TWO], budget=1e6, seeds=(0,))
    names = {k for params, _ in _trials(data) for k in params}
    assert {"small_mixed", "small_climb_split", "tier1_mixed", "tier1_climb_split"} <= names


def test_engine_equals_evaluator_on_the_mixed_plans_the_space_suggests():
    """Every mixed plan of 40 random trials (with their score weights, floors, split climbs,
    Adaptive-Consistency stops and top votes), replayed on 16 questions: the engine's answers,
    costs and tokens equal the evaluator's, within the budget."""
    arrays = DATE.subset(range(16))
    data = prepare_ladder(arrays, TWO, budget=1e6, seeds=(0,))
    problems = [DATE_BANK.problems[p] for p in arrays.problem_ids]
    ladders = [Ladder(rungs=rungs) for _, rungs in _trials(data) if rungs[0].mix_mode]
    assert len(ladders) >= 10
    for i, ladder in enumerate(ladders):
        budget = (20_000, 262_144)[i % 2]
        ev = evaluate(arrays, ladder, budget, [i % 3], count_prompt=True)
        engine = tts.Engine(ReplayBackend(DATE_BANK, TWO[0]), ReplayBackend(DATE_BANK, TWO[1]),
                            seed=i % 3, count_prompt=True, cost=DATE_BANK.meta.cost)
        assert_same_as_evaluator(engine.solve_many(problems, budget, strategy=ladder), ev,
                                 arrays, budget, TWO)
