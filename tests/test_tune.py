"""Tuning: held-out reports only, persistent and resumable studies, clear errors."""

import json

import numpy as np
import optuna
import pytest

import tts
from tts.bank import load_bank
from tts.cli import main as cli_main
from tts.errors import ValidationError
from tts.evaluate import BankArrays, evaluate
from tts.policy import CrossFitPolicy, ParamPolicy, load_policy
from tts.studies import open_storage
from tts.sweep import run_sweep
from tts.sweep.plans import plan_entries
from tts.tune import run_tune, split, tune_level
from tts.tune_select import Scored, baseline_levels, baseline_params, select
from tts.tune_space import policy_of_levels, prepare

from .conftest import make_bank


@pytest.fixture(scope="module")
def arrays():
    return BankArrays.from_bank(load_bank(tts.BUNDLED_BANK))


@pytest.fixture(scope="module")
def small_arrays(arrays):
    return arrays.subset(np.arange(0, 300, 3))  # 100 questions keep the tests fast


def test_train_heldout_run_reports_only_heldout_questions(small_arrays, tmp_path):
    out = run_tune(small_arrays, objective="accuracy", budgets=[2048, 131072], trials=6,
                   heldout_fraction=0.3, seeds=[0])
    policy, report = out["policy"], out["report"]
    assert isinstance(policy, ParamPolicy) and len(policy.levels) == 2
    train, held = set(policy.train_ids), set(report["split"]["heldout_ids"])
    assert len(held) == 30 and len(train) == 70 and not train & held
    assert [r["budget"] for r in report["heldout"]] == [2048, 131072]
    assert all(r["questions"] == 30 for r in report["heldout"])
    # The reported numbers are the policy's on exactly the held-out questions.
    idx = [small_arrays.problem_ids.index(i) for i in report["split"]["heldout_ids"]]
    ev = evaluate(small_arrays.subset(idx), policy, 2048, report["heldout_seeds"])
    assert report["heldout"][0]["accuracy"] == ev.accuracy
    # The sweep sees the training split in the policy file and scores the rest only.
    path = tmp_path / "policy.json"
    policy.to_json(path)
    sub = small_arrays.bank.subset(small_arrays.problem_ids)
    result = run_sweep(sub, [2048], strategies=["vote@4", "policy"], policy=path, seeds=1,
                       bootstrap=0, progress=False)
    assert result.heldout and result.n_questions == 30


def test_kfold_scores_every_question_out_of_fold(small_arrays):
    out = run_tune(small_arrays, objective="accuracy", budgets=[4096], trials=4, folds=4,
                   seeds=[0])
    cf = out["crossfit"]
    assert isinstance(cf, CrossFitPolicy) and len(cf.policies) == 4
    for f, pol in enumerate(cf.policies):
        held = {pid for pid, g in cf.fold_of.items() if g == f}
        assert len(held) == 25 and not held & set(pol.train_ids)
    assert out["report"]["heldout"][0]["questions"] == 100
    assert set(out["policy"].train_ids) == set(small_arrays.problem_ids)


def test_cost_and_pareto_objectives(small_arrays):
    out = run_tune(small_arrays, objective="cost", budgets=[262144], trials=8, seeds=[0])
    r = out["report"]["heldout"][0]
    assert 0 < r["cost_share_of_large_only"] < 1.2 and 0 <= r["accuracy"] <= 1
    out = run_tune(small_arrays, objective="pareto", budgets=[262144], trials=8, seeds=[0])
    front = out["report"]["pareto_front_heldout"]
    assert front and all("accuracy" in f and "mean_cost" in f for f in front)
    with pytest.raises(ValidationError, match="tunes one budget"):
        run_tune(small_arrays, objective="cost", budgets=[1000, 2000], trials=2)


def test_same_seed_same_study(small_arrays):
    data = prepare(small_arrays.subset(np.arange(60)), seeds=[0])
    a = tune_level(data, 8192, trials=10, sampler_seed=3)
    b = tune_level(data, 8192, trials=10, sampler_seed=3)
    assert a.level == b.level and a.value == b.value


def test_interrupted_study_resumes(small_arrays, tmp_path):
    data = prepare(small_arrays.subset(np.arange(60)), seeds=[0])
    url = f"sqlite:///{tmp_path / 'tune.db'}"
    calls = []

    def interrupt_after_four(n):
        calls.append(n)
        if n >= 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tune_level(data, 8192, trials=10, storage=open_storage(url), study_name="s",
                   progress=interrupt_after_four)
    stored = optuna.load_study(study_name="s", storage=url)
    assert sum(t.state.name == "COMPLETE" for t in stored.trials) == 4
    seen = []
    result = tune_level(data, 8192, trials=10, storage=open_storage(url), study_name="s",
                        progress=seen.append)
    assert seen[0] == 4 and result.trials == 10  # only the 6 missing trials ran
    stored = optuna.load_study(study_name="s", storage=url)
    assert sum(t.state.name == "COMPLETE" for t in stored.trials) == 10
    # Running again has nothing left to do; other settings under the same name are refused.
    assert tune_level(data, 8192, trials=10, storage=open_storage(url), study_name="s").trials \
        == 10
    with pytest.raises(ValidationError, match="other data or settings"):
        tune_level(data, 4096, trials=10, storage=open_storage(url), study_name="s")


@pytest.mark.parametrize("url, match", [
    ("sqlite:////nonexistent-dir/x/tune.db", "cannot open Optuna storage"),
    ("nosuchdb://host/db", "cannot open Optuna storage"),
    ("tune.db", "must be an Optuna RDB URL"),
])
def test_bad_storage_is_a_clear_error(url, match):
    with pytest.raises(ValidationError, match=match):
        open_storage(url)


def test_bank_too_small_to_split():
    tiny = BankArrays.from_bank(make_bank(n_problems=3))
    with pytest.raises(ValidationError, match="too small to split"):
        run_tune(tiny, trials=2, heldout_fraction=0.3)
    with pytest.raises(ValidationError, match="too small for 5-fold"):
        run_tune(tiny, trials=2, folds=5)
    with pytest.raises(ValidationError, match="heldout_fraction"):
        split(100, 1.5)


def test_bad_arguments(small_arrays):
    data = prepare(small_arrays.subset(np.arange(40)), seeds=[0])
    with pytest.raises(ValidationError, match="objective"):
        tune_level(data, 1000, objective="speed", trials=2)
    with pytest.raises(ValidationError, match="trials"):
        tune_level(data, 1000, trials=0)
    with pytest.raises(ValidationError, match="target accuracy"):
        tune_level(data, 262144, objective="cost", target=1.5, trials=2)
    with pytest.raises(ValidationError, match="strictly increasing"):
        run_tune(small_arrays, budgets=[2000, 1000], trials=2)


def test_cli_tune_writes_policy_and_heldout_report(tmp_path, capsys):
    out = tmp_path / "out"
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    argv = ["tune", "--budget", "131072", "--trials", "3", "--seeds", "1", "--storage", db,
            "--out", str(out), "--no-progress"]
    assert cli_main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["split"]["kind"] == "train/held-out" and report["heldout"][0]["questions"] == 90
    policy = load_policy(out / "policy.json")
    assert len(policy.train_ids) == 210
    assert "held-out results" in capsys.readouterr().out
    assert cli_main(argv) == 0  # resumes: the study already holds its trials
    assert cli_main(["tune", "--storage", "nosuchdb://x", "--trials", "1",
                     "--out", str(out)]) == 2
    assert "cannot open Optuna storage" in capsys.readouterr().err


# ---- the selection guard (one-standard-error rule) --------------------------------------------
def _scored(arrays, data, level, budget, seeds):
    ev = evaluate(arrays, policy_of_levels(data, [level]), budget, seeds)
    return Scored(level, ev, ev.accuracy - 1e-4 * ev.mean_cost / data.ref_cost)


@pytest.mark.parametrize("budget", [64.0, 700.0, 5000.0, 1e6])
def test_baselines_reproduce_the_sweeps_fixed_plans_exactly(budget):
    bank = make_bank(n_problems=12, seed=3)
    arrays = BankArrays.from_bank(bank)
    data = prepare(arrays, seeds=[0])
    sweep_plans = {e.name: e.plan for e in plan_entries(bank, None, None) if e.kind == "fixed"}
    levels = dict(baseline_levels(data, budget))
    assert {n for n in sweep_plans if n != "chain"} <= set(levels)
    for name, plan in sweep_plans.items():
        if name == "chain":
            continue
        a = evaluate(arrays, plan, budget, (0, 1, 2))
        b = evaluate(arrays, policy_of_levels(data, [levels[name]]), budget, (0, 1, 2))
        assert np.array_equal(a.correct, b.correct) and np.allclose(a.cost, b.cost), name


def test_guard_keeps_the_baseline_when_the_tuned_plan_is_no_better():
    arrays = BankArrays.from_bank(make_bank(n_problems=30, seed=1))
    data = prepare(arrays, seeds=[0, 1])
    # Only the enqueued fixed plans run, so the winner is one of them and no better than the
    # best baseline on the same questions and seeds (mean d <= 0).
    r = tune_level(data, 5000.0, trials=len(baseline_params(data, 5000.0)))
    assert r.chosen.startswith("baseline:") and r.selection["mean_diff"] <= 0.0
    assert "keep the fixed plan" in r.selection["reason"]
    assert r.level == dict(baseline_levels(data, 5000.0))[r.chosen.split(":", 1)[1]]
    # Equal outcomes under another name are no reason to leave the fixed plan either.
    levels = dict(baseline_levels(data, 5000.0))
    base = {k: _scored(arrays, data, lv, 5000.0, (0, 1)) for k, lv in levels.items()}
    best = max(base, key=lambda k: base[k].value)
    chosen, rec = select("accuracy", base[best], base, 1.0)
    assert chosen == f"baseline:{best}" and rec["se"] == 0.0
    # The guard can be switched off (the re-ranked winner is returned as before).
    off = tune_level(data, 5000.0, trials=len(baseline_params(data, 5000.0)), se_margin=None)
    assert off.chosen == "tuned" and off.level == off.tuned_level


def test_guard_keeps_a_clearly_better_tuned_plan(small_arrays):
    data = prepare(small_arrays, seeds=[0])
    levels = dict(baseline_levels(data, 262144.0))
    votes = {k: _scored(small_arrays, data, lv, 262144.0, (0, 1)) for k, lv in levels.items()
             if k.startswith("vote")}
    # Escalating every question (GPT-4, ~0.97) against small-model votes only (~0.45).
    tuned = _scored(small_arrays, data, levels["escalate"], 262144.0, (0, 1))
    chosen, rec = select("accuracy", tuned, votes, 1.0)
    assert chosen == "tuned" and rec["mean_diff"] > 5 * rec["se"] > 0
    # A small gain within one standard error is not enough; with margin 0 it is.
    d = tuned.ev.correct.mean(0) - votes[rec["baseline"]].ev.correct.mean(0)
    assert select("accuracy", tuned, votes, float(d.mean() / rec["se"]) + 0.01)[0] \
        == f"baseline:{rec['baseline']}"
    # Cost objective: the cheaper plan must reach the target with the margin to be kept.
    cost = {k: Scored(s.level, s.ev, s.ev.mean_cost / data.ref_cost) for k, s in
            {"escalate": tuned, **votes}.items()}
    cheap = cost["vote@20"]
    chosen, rec = select("cost", cheap, {"escalate": cost["escalate"]}, 1.0, target=0.9)
    assert chosen == "baseline:escalate" and "no worse" not in rec["reason"]
    chosen, _ = select("cost", cheap, {"escalate": cost["escalate"]}, 1.0, target=0.3)
    assert chosen == "tuned"


def test_run_tune_reports_the_guards_choice(small_arrays):
    out = run_tune(small_arrays, budgets=[4096, 262144], trials=6, folds=2, seeds=[0],
                   se_margin=0.5)
    report = out["report"]
    assert report["se_margin"] == 0.5
    for sel, held in zip(report["selection"], report["heldout"]):
        assert len(sel["folds"]) == 2 and len(held["chosen"]) == 2
        for s in sel["folds"]:
            assert s["chosen"] == "tuned" or s["chosen"] == f"baseline:{s['baseline']}"
            assert {"mean_diff", "se", "reason"} <= set(s)
    assert [s["budget"] for s in out["policy"].notes["selection"]] == [4096, 262144]
    with pytest.raises(ValidationError, match="se_margin"):
        run_tune(small_arrays, trials=2, se_margin=-1.0)
