"""Label-free tuning (issue 25, item 3): `reference="top"` scores every plan by agreement with
the top model's greedy answer, so a bank without gold can be tuned; a bank without the top
model's greedy answers (or, for gold tuning, without gold) is a clear error."""

import json

import numpy as np
import pytest

import tts
from tts.bank import Problem, Record, load_bank, save_bank
from tts.errors import ValidationError
from tts.evaluate import BankArrays, evaluate
from tts.policy import DefaultPolicy, load_policy, policy_expected
from tts.tuning import run_tune
from tts.tuning.reference import agreement_arrays, check_reference

from .conftest import make_bank

DATE = BankArrays.from_bank(load_bank(tts.BUNDLED_DATE_BANK))
TWO = ["gpt-3.5-turbo", "gpt-4"]


def test_agreement_view_scores_agreement_at_the_same_cost():
    arrays = DATE.with_ladder(TWO)
    agree = agreement_arrays(arrays, "gpt-4")
    top = agree.mode("gpt-4", "greedy").cls[:, 0]
    for key, m in agree.modes.items():
        assert (m.correct == ((m.cls == top[:, None]) & (m.cls >= 0))).all(), key
    gold = evaluate(arrays, DefaultPolicy(), 262144, [0, 1], count_prompt=True)
    ev = evaluate(agree, DefaultPolicy(), 262144, [0, 1], count_prompt=True)
    assert (ev.cost == gold.cost).all() and (ev.status == gold.status).all()
    assert ev.accuracy != gold.accuracy  # agreement is not accuracy on DATE
    sub = agreement_arrays(arrays.subset(range(40, 90)), "gpt-4")
    part = evaluate(sub, DefaultPolicy(), 262144, [0], count_prompt=True)
    assert (part.correct[0] == ev.correct[0, 40:90]).all()


def test_label_free_tuning_reports_gold_accuracy_beside_agreement():
    train = DATE.subset(range(90))
    out = run_tune(train, TWO, objective="accuracy", max_cost_share=0.3, trials=4, folds=2,
                   reference="top", seeds=(0,), heldout_seeds=(5,))
    report, policy = out["report"], out["policy"]
    assert report["reference"] == "top" and policy.notes["reference"] == "top"
    assert policy_expected(policy)["reference"] == "top"
    arrays = train.with_ladder(TWO)
    gold = evaluate(arrays, out["crossfit"], 262144, [5], count_prompt=True)
    agree = evaluate(agreement_arrays(arrays, "gpt-4"), out["crossfit"], 262144, [5],
                     count_prompt=True)
    assert report["heldout"]["accuracy"] == pytest.approx(gold.accuracy)
    assert report["heldout"]["disagreement"] == pytest.approx(1 - agree.accuracy)


def _no_gold_bank():
    bank = make_bank(n_problems=24, n_small=6, n_large=3, seed=3, abstain=0.05)
    for pid, prob in list(bank.problems.items()):
        bank.problems[pid] = Problem(prob.question, id=pid, gold=None)
    return bank


def test_a_bank_without_gold_tunes_against_the_top_model_only():
    arrays = BankArrays.from_bank(_no_gold_bank())
    with pytest.raises(ValidationError, match="24 of 24 questions .* no gold answer.*"
                                              "--reference top"):
        run_tune(arrays, ["s", "l"], objective="accuracy", trials=2, folds=2, seeds=(0,))
    out = run_tune(arrays, ["s", "l"], objective="accuracy", trials=3, folds=2,
                   reference="top", seeds=(0,), heldout_seeds=(5,))
    h = out["report"]["heldout"]
    assert h["accuracy"] is None and h["large_greedy_accuracy"] is None
    assert 0 <= h["disagreement"] <= 1
    assert policy_expected(out["policy"])["accuracy"] is None
    json.dumps(out["report"], allow_nan=False, default=float)


def _no_top_greedy_bank(tmp_path):
    bank = make_bank(n_problems=12, seed=5)
    for key in [k for k in bank.records if k[1:] == ("l", "greedy")]:
        del bank.records[key]
    bank.add_record(Record("p0", "l", "greedy", 20, bank.records[("p0", "l", "sample")]
                           .samples[:1]))  # one question is not enough
    return bank


def test_reference_top_without_the_top_models_greedy_answers_is_a_clear_error(tmp_path,
                                                                              capsys):
    bank = _no_top_greedy_bank(tmp_path)
    arrays = BankArrays.from_bank(bank)
    with pytest.raises(ValidationError, match="greedy answer on every question"):
        check_reference(arrays, "top", "l")
    with pytest.raises(ValidationError, match="reference"):
        check_reference(arrays, "silver", "l")
    from tts.cli import main

    save_bank(bank, tmp_path / "bank")
    argv = ["tune", "--bank", str(tmp_path / "bank"), "--reference", "top", "--folds", "2",
            "--trials", "2", "--seeds", "1", "--out", str(tmp_path / "o"), "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--reference top needs the top model 'l'" in err and "Traceback" not in err


def test_cli_reference_top_writes_a_label_free_policy(tmp_path, capsys):
    from tts.cli import main

    bank = _no_gold_bank()
    save_bank(bank, tmp_path / "bank")
    argv = ["tune", "--bank", str(tmp_path / "bank"), "--reference", "top", "--folds", "2",
            "--trials", "3", "--seeds", "1", "--out", str(tmp_path / "o"), "--no-progress"]
    assert main(argv) == 0
    assert "tuned for agreement with the top model" in capsys.readouterr().out
    policy = load_policy(tmp_path / "o" / "policy.json")
    assert policy.notes["reference"] == "top"
    assert np.isfinite(policy_expected(policy)["disagreement"])
    assert main([*argv, "--objective", "cost"]) == 2
    assert "--target-accuracy" in capsys.readouterr().err
    argv[argv.index("top")] = "gold"
    assert main(argv) == 2
    assert "no gold answer" in capsys.readouterr().err
