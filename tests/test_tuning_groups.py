"""The worst group in every tune report (issue 25, item 4): folds hold groups out whole (a
scenario, or a tag per question id from `--groups FILE`), and the report names the group with
the lowest held-out accuracy and the highest disagreement beside the mean."""

import json

import numpy as np
import pytest

import tts
from tts.bank import load_bank
from tts.errors import ValidationError
from tts.evaluate import BankArrays, evaluate
from tts.tuning import run_tune
from tts.tuning.folds import group_folds, group_labels, read_groups, scenario
from tts.tuning.heldout import MIN_GROUP, Scores, worst_group
from tts.tuning.reference import agreement_arrays

DATE = BankArrays.from_bank(load_bank(tts.BUNDLED_DATE_BANK))
TWO = ["gpt-3.5-turbo", "gpt-4"]


def _tags() -> dict[str, str]:
    """Four tags of whole DATE scenarios (as a user's subject column would be)."""
    names = list(dict.fromkeys(scenario(q) for q in DATE.questions))
    return {p: f"t{names.index(scenario(q)) % 4}"
            for p, q in zip(DATE.problem_ids, DATE.questions)}


def test_worst_group_names_the_lowest_and_leaves_out_small_groups():
    labels = ["a"] * 5 + ["b"] * 6 + ["c"] * (MIN_GROUP - 1)
    correct = np.array([1, 1, 1, 1, 0] + [1, 0, 0, 1, 1, 1] + [0] * (MIN_GROUP - 1), float)
    agree = np.array([1, 1, 1, 1, 1] + [1, 1, 0, 1, 1, 1] + [0] * (MIN_GROUP - 1), float)
    zeros = np.zeros(len(labels))
    out = worst_group(Scores(agree, zeros, zeros, correct), labels, held_out_whole=True,
                      group_by="tag")
    assert out["groups"] == 3 and out["groups_counted"] == 2
    assert out["worst_accuracy"] == {"group": "b", "questions": 6, "accuracy": 4 / 6}
    assert out["mean_accuracy"] == pytest.approx((0.8 + 4 / 6) / 2)
    assert out["worst_disagreement"]["group"] == "b"
    assert out["worst_disagreement"]["disagreement"] == pytest.approx(1 / 6)
    no_gold = worst_group(Scores(agree, zeros, zeros), labels, held_out_whole=False,
                          group_by="scenario")
    assert "worst_accuracy" not in no_gold and "worst_disagreement" in no_gold
    tiny = worst_group(Scores(agree[:4], zeros[:4], zeros[:4]), ["x", "y", "x", "y"],
                       held_out_whole=True, group_by="tag")
    assert tiny["groups_counted"] == 0 and "reason" in tiny


def test_tag_folds_never_split_a_tag_and_missing_ids_are_named():
    tags = _tags()
    parts = group_folds(DATE, 2, tags)
    for part in parts:
        assert {tags[DATE.problem_ids[i]] for i in part}.isdisjoint(
            {tags[DATE.problem_ids[i]] for p in parts if p is not part for i in p})
    partial = dict(list(tags.items())[:-3])
    with pytest.raises(ValidationError, match="3 of 171 questions have no group"):
        group_labels(DATE, partial)


def test_report_names_the_worst_tag_held_out_whole(tmp_path):
    tags = _tags()
    out = run_tune(DATE, TWO, objective="accuracy", max_cost_share=0.3, trials=4, folds=2,
                   group_by=tags, seeds=(0,), heldout_seeds=(5,))
    report = out["report"]
    worst = report["heldout"]["worst_group"]
    assert report["group_by"] == "tag" and worst["group_by"] == "tag"
    assert worst["held_out_whole"] and worst["groups"] == 4
    # Independently: the outer folds' policies, each on the tags it never saw.
    arrays = DATE.with_ladder(TWO)
    gold = evaluate(arrays, out["crossfit"], 262144, [5], count_prompt=True).correct[0]
    agree = evaluate(agreement_arrays(arrays, "gpt-4"), out["crossfit"], 262144, [5],
                     count_prompt=True).correct[0]
    labels = np.array([tags[p] for p in arrays.problem_ids])
    acc = {t: gold[labels == t].mean() for t in set(labels)}
    dis = {t: 1 - agree[labels == t].mean() for t in set(labels)}
    assert worst["worst_accuracy"]["accuracy"] == pytest.approx(min(acc.values()))
    assert worst["worst_accuracy"]["group"] == min(acc, key=lambda t: (acc[t], t))
    assert worst["worst_disagreement"]["disagreement"] == pytest.approx(max(dis.values()))
    assert worst["mean_accuracy"] == pytest.approx(np.mean(list(acc.values())))
    assert "worst_group" in report["deployed"]["expected_heldout"]


def test_question_folds_report_scenarios_not_held_out_whole():
    out = run_tune(DATE.subset(range(60)), TWO, objective="accuracy", max_cost_share=0.3,
                   trials=3, folds=2, seeds=(0,), heldout_seeds=(5,))
    worst = out["report"]["heldout"]["worst_group"]
    assert worst["group_by"] == "scenario" and worst["held_out_whole"] is False


def test_cli_groups_file_and_its_bad_input(tmp_path, capsys):
    from tts.cli import main

    groups = tmp_path / "groups.json"
    groups.write_text(json.dumps(_tags()))
    base = ["tune", "--bank", str(tts.BUNDLED_DATE_BANK), "--ladder", ",".join(TWO),
            "--folds", "2", "--trials", "3", "--seeds", "1", "--max-cost-share", "0.3",
            "--no-progress"]
    assert main([*base, "--groups", str(groups), "--out", str(tmp_path / "o")]) == 0
    shown = capsys.readouterr().out
    assert "held-out (2-fold by tag)" in shown and "worst tag" in shown
    assert max(len(line) for line in shown.splitlines() if "wrote" not in line) <= 80
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["heldout"]["worst_group"]["group_by"] == "tag"
    bad = {"must be a JSON object": "[1, 2]", "group of": json.dumps({"x": [1]}),
           "no group": json.dumps({DATE.problem_ids[0]: "a"}), "not valid JSON": "{"}
    for message, text in bad.items():
        groups.write_text(text)
        assert main([*base, "--groups", str(groups), "--out", str(tmp_path / "b")]) == 2
        assert message in capsys.readouterr().err
    assert main([*base, "--group-by", "tag", "--out", str(tmp_path / "b")]) == 2
    assert "--group-by tag needs --groups" in capsys.readouterr().err
    assert main([*base, "--groups", str(tmp_path / "none.json"), "--out",
                 str(tmp_path / "b")]) == 2
    assert "none.json" in capsys.readouterr().err
    groups.write_text(json.dumps(_tags()))
    assert main([*base, "--groups", str(groups), "--group-by", "scenario", "--out",
                 str(tmp_path / "b")]) == 2
    assert "cannot be combined" in capsys.readouterr().err


def test_read_groups_takes_integer_tags(tmp_path):
    path = tmp_path / "g.json"
    path.write_text(json.dumps({"a": 1, "b": "x"}))
    assert read_groups(path) == {"a": "1", "b": "x"}


def _subject_bank():
    """A synthetic bank whose ids are `<subject>/<row>`, as `tts bank import-routellm`
    writes them (six subjects of eight questions)."""
    from tts.bank import Problem, Record, SampleBank

    from .conftest import make_bank

    src = make_bank(n_problems=48, n_small=6, n_large=3, seed=11, abstain=0.05)
    bank = SampleBank(src.meta)
    new = {f"p{i}": f"subject{i % 6}/{i}" for i in range(48)}
    for pid, prob in src.problems.items():
        bank.add_problem(Problem(prob.question, id=new[pid], gold=prob.gold))
    for (pid, model, mode), rec in src.records.items():
        bank.add_record(Record(new[pid], model, mode, rec.prompt_tokens, rec.samples))
    return bank


def test_subject_groups_come_from_the_ids_prefix(tmp_path, capsys):
    arrays = BankArrays.from_bank(_subject_bank())
    assert set(group_labels(arrays, "subject")) == {f"subject{i}" for i in range(6)}
    out = run_tune(arrays, ["s", "l"], objective="accuracy", trials=3, folds=3,
                   group_by="subject", seeds=(0,), heldout_seeds=(5,))
    worst = out["report"]["heldout"]["worst_group"]
    assert worst["group_by"] == "subject" and worst["groups_counted"] == 6
    assert worst["worst_accuracy"]["group"].startswith("subject")
    with pytest.raises(ValidationError, match="no id of bank 'mot_date' has one"):
        group_labels(DATE, "subject")
    from tts.cli import main

    assert main(["tune", "--bank", str(tts.BUNDLED_DATE_BANK), "--ladder", ",".join(TWO),
                 "--group-by", "subject", "--trials", "2", "--folds", "2",
                 "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "--groups FILE instead" in capsys.readouterr().err
