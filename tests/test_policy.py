"""The one policy (a ladder of rungs per budget level): JSON round trip and clear errors,
per-budget levels, skipping the first rung on the prompt's prior, the default cascade, and
exact agreement of the vectorised evaluation with the engine. Policies are built here from
tts-policy/1 data (the older format, converted on load), which exercises every rung option."""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tts
from tts.bank import load_bank
from tts.cli import main as cli_main
from tts.difficulty import PromptDifficulty, vote_wrong
from tts.errors import ValidationError
from tts.evaluate import BankArrays, evaluate
from tts.policy import (DEFAULT_RUNGS, CrossFitPolicy, DefaultPolicy, LadderPolicy, load_policy,
                        policy_from_dict)
from tts.budgets import Budget
from tts.strategies import Adaptive, Cascade, Ladder, make_strategy

from .conftest import make_bank
from .test_evaluate import assert_same


@pytest.fixture(scope="module")
def bundled():
    bank = load_bank(tts.BUNDLED_BANK)
    arrays = BankArrays.from_bank(bank)
    prompt = PromptDifficulty.fit(arrays.questions, vote_wrong(arrays))
    return bank, arrays, prompt


LEVEL = {"from_budget": 0.0, "probe": 4, "wave": 4, "max_samples": 16, "max_tokens": 512,
         "temperature": 0.7, "confidence": 0.95, "escalate_above": 0.5,
         "escalate_early_above": 1.0, "direct_above": 1.0, "use_large": True, "large_samples": 1,
         "large_max_tokens": 512, "keep_for_large": False, "probe_weights": None}


def param_dict(levels, weights=(1.0, -4.0, 0.5, 1.0, 1.0, -1.0, 0.7), prompt=None) -> dict:
    return {"format": "tts-policy/1", "probe_weights": list(weights),
            "prompt": None if prompt is None else prompt.to_dict(),
            "levels": [{**LEVEL, **lv} for lv in levels], "notes": {"source": "test"}}


def good_dict(prompt=None) -> dict:
    return param_dict([dict(probe=3, wave=2, max_samples=12, max_tokens=256, confidence=0.9,
                            escalate_above=0.4, direct_above=0.7, escalate_early_above=0.8),
                       dict(from_budget=100_000, probe=2, direct_above=0.6,
                            large_max_tokens=384, keep_for_large=True,
                            probe_weights=[6, -12, 0, 0, 0, 0, 0])], prompt=prompt)


def sample_policy(prompt=None) -> LadderPolicy:
    return policy_from_dict(good_dict(prompt))


def test_json_round_trip(tmp_path, bundled):
    _, _, prompt = bundled
    for policy in (sample_policy(), sample_policy(prompt)):
        path = tmp_path / "p.json"
        policy.to_json(path)
        assert load_policy(path) == policy
        assert json.loads(path.read_text())["format"] == "tts-policy/2"


def test_to_dict_is_a_copy():
    policy = policy_from_dict({**good_dict(), "notes": {"source": "test",
                                                        "nested": {"ids": [1, 2]}}})
    before = json.dumps(policy.notes, sort_keys=True)
    out = policy.to_dict()
    out["notes"]["nested"]["ids"].append(3)
    out["notes"]["source"] = "edited"
    assert json.dumps(policy.notes, sort_keys=True) == before


def mutate(fn):
    d = good_dict()
    fn(d)
    return d


@pytest.mark.parametrize("data, match", [
    (mutate(lambda d: d.pop("levels")), r"missing field\(s\) \['levels'\]"),
    (mutate(lambda d: d.update(extra=1)), r"unknown field\(s\) \['extra'\]"),
    (mutate(lambda d: d["levels"][1].update(bogus=2)),
     r"levels\[1\] has unknown field\(s\) \['bogus'\]"),
    (mutate(lambda d: d["levels"][0].update(probe=0)),
     r"levels\[0\]: `probe` must be an integer >= 1, got 0"),
    (mutate(lambda d: d["levels"][0].update(confidence=0.2)),
     r"`confidence` must be in \[0.5, 1.0\], got 0.2"),
    (mutate(lambda d: d["levels"][1].update(escalate_above=1.5)),
     r"levels\[1\]: `climb_above` must be in"),
    (mutate(lambda d: d["levels"][0].update(direct_above=-0.1)), r"`direct_above` must be in"),
    (mutate(lambda d: d["levels"][0].update(from_budget=5)), r"the first from budget 0"),
    (mutate(lambda d: d["levels"][1].update(from_budget=0)), r"strictly increasing from_budget"),
    (mutate(lambda d: d["levels"][0].update(max_tokens="512")),
     r"`max_tokens` must be an integer"),
    (mutate(lambda d: d["levels"][0].update(use_large="yes")),
     r"`use_large` must be true or false"),
    (mutate(lambda d: d["levels"][0].update(probe_weights=[1, 2])),
     r"`probe_weights` must be 7 finite"),
    (mutate(lambda d: d.update(probe_weights=[1, 2, 3])), r"`probe_weights` must be 7 finite"),
    (mutate(lambda d: d.update(format="tts-policy/0")), r"`format` must be one of"),
    (mutate(lambda d: d.update(levels=[])), r"`levels` must be a non-empty list"),
    (mutate(lambda d: d.update(prompt={"weights": [1]})),
     r"missing field\(s\) \['mean', 'scale'\]"),
    ([1, 2], "must be a JSON object"),
])
def test_bad_policy_json_is_a_clear_error(tmp_path, data, match):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValidationError, match=match):
        load_policy(path)


def test_unreadable_policy_files(tmp_path):
    with pytest.raises(ValidationError, match="does not exist"):
        load_policy(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValidationError, match="not valid JSON"):
        load_policy(bad)


def test_levels_are_chosen_by_budget():
    policy = sample_policy()
    assert policy.level(50).rungs[0].probe == 3 and policy.level(99_999.9).rungs[0].probe == 3
    assert policy.level(100_000).rungs[0].probe == 2 and policy.level(1e9).rungs[0].probe == 2


def test_decide_direct_escalation_adaptive_and_no_large(bundled):
    bank, arrays, prompt = bundled
    policy = sample_policy(prompt)
    models = {"small": "llama-2-13b", "large": "gpt-4"}
    priors = prompt.logits(arrays.questions)
    hard = bank.problems[arrays.problem_ids[int(np.argmax(priors))]]
    easy = bank.problems[arrays.problem_ids[int(np.argmin(priors))]]
    s_hard, d_hard = policy.decide(hard, Budget(tokens=200_000), models)
    s_easy, d_easy = policy.decide(easy, Budget(tokens=200_000), models)
    assert d_hard > d_easy
    # Level 1: its small rung is skipped at difficulty >= 0.6, straight to a 384-token large rung.
    assert s_hard.rungs[0].skip_above == 0.6 and s_hard.rungs[1].max_tokens == 384
    engine = tts.replay_engine(policy=policy)
    r_hard, r_easy = engine.solve(hard, 200_000), engine.solve(easy, 200_000)
    assert r_hard.escalated and "llama-2-13b" not in r_hard.tokens
    assert "llama-2-13b" in r_easy.tokens and s_easy.prior == pytest.approx(priors.min())
    assert s_easy.rungs[0].weights[:6] == (6, -12, 0, 0, 0, 0)  # the level's own probe model
    assert s_easy.rungs[0].hold_next  # keep_for_large
    small_only, _ = policy.decide(hard, Budget(tokens=200_000), {"small": "llama-2-13b"})
    assert small_only.roles == ("small",) and not small_only.rungs[-1].hold_next


def test_default_policy_is_the_documented_cascade(bundled):
    bank, _, _ = bundled
    s, d = DefaultPolicy().decide(tts.Problem("q?"), Budget(tokens=10), {"small": "a",
                                                                          "large": "b"})
    assert s == Ladder(rungs=DEFAULT_RUNGS) and d is None
    alone, _ = DefaultPolicy().decide(tts.Problem("q?"), Budget(tokens=10), {"small": "a"})
    assert [r.role for r in alone.rungs] == ["small"] and not alone.rungs[0].hold_next
    # The same Results as the Cascade(keep_for_large=True) it replaces.
    problems = [bank.problems[p] for p in bank.problem_ids[:40]]
    for budget in (900, 20_000, 122_880, 122_900, 262_144):  # 122,880: the held call, exactly
        engine = tts.replay_engine(seed=3)
        new = engine.solve_many(problems, budget)
        old = engine.solve_many(problems, budget, strategy=Cascade(keep_for_large=True))
        assert [(r.answer, r.status, r.escalated, r.cost) for r in new] == \
            [(r.answer, r.status, r.escalated, r.cost) for r in old]


@pytest.mark.parametrize("budget, count_prompt", [(3_000, False), (90_000, True),
                                                  (150_000, False), (400_000, True)])
def test_policy_evaluation_matches_engine_on_bundled_bank(bundled, budget, count_prompt):
    bank, arrays, prompt = bundled
    ev = assert_same(bank, sample_policy(prompt), budget, 3, count_prompt, policy=True,
                     arrays=arrays)
    assert ev is not None and ev.difficulty.shape == (1, 300)


unit = st.floats(0.0, 1.0)
levels = st.fixed_dictionaries(dict(
    probe=st.integers(1, 5), wave=st.integers(1, 5), max_samples=st.integers(1, 8),
    max_tokens=st.integers(1, 400), confidence=st.floats(0.5, 1.0), escalate_above=unit,
    escalate_early_above=unit, direct_above=unit, use_large=st.booleans(),
    large_samples=st.integers(1, 3), large_max_tokens=st.integers(1, 400),
    keep_for_large=st.booleans()))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(level=levels, second=levels, split=st.floats(10, 5_000),
       budget=st.floats(0.0, 5.0).map(lambda x: 10 ** x), seed=st.integers(0, 1000),
       count_prompt=st.booleans(), bank_seed=st.integers(0, 1000),
       weights=st.tuples(*[st.floats(-5, 5)] * 7))
def test_policy_evaluation_matches_engine_on_synthetic_banks(level, second, split, budget, seed,
                                                             count_prompt, bank_seed, weights):
    bank = make_bank(n_problems=6, n_small=8, n_large=3, seed=bank_seed)
    arrays = BankArrays.from_bank(bank)
    labels = np.array([i % 2 == 0 for i in range(6)])
    prompt = PromptDifficulty.fit(arrays.questions, labels)
    policy = policy_from_dict(param_dict([level, {**second, "from_budget": split}], weights,
                                         prompt))
    assert_same(bank, policy, budget, seed, count_prompt, policy=True, arrays=arrays)


def test_crossfit_policy_dispatches_by_fold_and_loads(tmp_path, bundled):
    bank, arrays, prompt = bundled
    ids = arrays.problem_ids
    a, b = sample_policy(prompt), sample_policy()
    cf = CrossFitPolicy([a, b], [ids[:150], ids[150:]])
    assert cf.train_ids == []
    models = {"small": "llama-2-13b", "large": "gpt-4"}
    budget = Budget(tokens=200_000)
    assert cf.decide(bank.problems[ids[0]], budget, models) == a.decide(
        bank.problems[ids[0]], budget, models)
    assert cf.decide(bank.problems[ids[200]], budget, models) == b.decide(
        bank.problems[ids[200]], budget, models)
    with pytest.raises(ValidationError, match="in no fold"):
        cf.decide(tts.Problem("new question?"), budget, models)
    path = tmp_path / "cf.json"
    path.write_text(json.dumps(cf.to_dict()))
    loaded = load_policy(path)
    ev1 = evaluate(arrays, cf, 200_000, [0])
    ev2 = evaluate(arrays, loaded, 200_000, [0])
    assert np.array_equal(ev1.cost, ev2.cost) and np.array_equal(ev1.correct, ev2.correct)
    assert_same(bank, cf, 150_000, 0, False, policy=True, arrays=arrays)


def test_solve_and_cli_use_a_policy_file(tmp_path, bundled, capsys):
    bank, _, prompt = bundled
    path = tmp_path / "policy.json"
    sample_policy(prompt).to_json(path)
    question = bank.problems["gsm8k-test-0"].question
    r = tts.replay_engine(policy=load_policy(path)).solve(question, 200_000)
    assert r.strategy == "ladder" and r.difficulty is not None
    assert cli_main(["solve", question, "--budget", "200000", "--policy", str(path),
                     "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["answer"] == r.answer and out["strategy"] == r.strategy
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "tts-policy/2"}))
    assert cli_main(["solve", question, "--budget", "1000", "--policy", str(bad)]) == 2
    assert "missing field" in capsys.readouterr().err


def test_adaptive_is_registered_and_validates():
    assert isinstance(make_strategy("adaptive", probe=2), Adaptive)
    for bad, match in [(dict(probe=0), "probe"), (dict(weights=(1, 2)), "weights"),
                       (dict(temperature=0), "temperature"), (dict(prior=float("nan")), "prior"),
                       (dict(escalate_early_above=2), "escalate_early_above")]:
        with pytest.raises(ValidationError, match=match):
            Adaptive(**bad)


def test_policy_from_dict_keeps_notes():
    d = good_dict()
    d["notes"] = {"train_ids": ["a", "b"]}
    assert policy_from_dict(d).train_ids == ["a", "b"]
