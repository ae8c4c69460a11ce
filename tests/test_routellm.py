"""RouteLLM evaluation logs as banks: layouts, grading rules, tokens, prices and bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tts.answers import is_correct
from tts.bank import load_bank
from tts.cli import main as cli_main
from tts.errors import BankError
from tts.routellm import LOGGED_RIGHT, LOGGED_WRONG, ROUTELLM_USD, group_of, import_routellm
from tts.routing import bank_table

from .conftest import SHARED_DATA

WEAK, STRONG = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"


def mc_prompt(i: int) -> str:
    return (f"Which planet is number {i}?\nA. Mercury\nB. Venus\nC. Earth\nD. Mars\nAnswer:")


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture
def mmlu_like(tmp_path) -> Path:
    src = tmp_path / "mmlu_like"
    for subject, n in (("mmlu_astronomy", 6), ("mmlu_virology", 4)):
        write_csv(src / "responses" / f"{subject}.csv", ["prompt", WEAK, STRONG],
                  [[mc_prompt(i) + f" ({subject})", str(i % 2 == 0), str(i % 3 != 0)]
                   for i in range(n)])
    (src / "contaminated_prompts.jsonl").write_text(json.dumps(
        {"eval_prompt": mc_prompt(1) + " (mmlu_virology)", "train_prompt": "x"}) + "\n")
    return src


def test_multiple_choice_logs_become_a_bank(mmlu_like, tmp_path) -> None:
    bank = load_bank(import_routellm(mmlu_like, tmp_path / "bank"))
    assert len(bank.problems) == 9  # one contaminated prompt left out
    assert bank.meta.ladder == (WEAK, STRONG)  # cheapest first, by price
    assert bank.meta.roles == {"small": WEAK, "large": STRONG}
    assert sorted({group_of(p) for p in bank.problem_ids}) == ["mmlu_astronomy",
                                                                "mmlu_virology"]
    rec = bank.record("mmlu_astronomy/00003", WEAK, "greedy")
    assert rec.samples[0].answer == LOGGED_WRONG and rec.samples[0].tokens == 1
    assert bank.problems["mmlu_astronomy/00003"].gold == LOGGED_RIGHT
    assert rec.prompt_tokens > 10
    table = bank_table(bank)
    assert table.tiers == (WEAK, STRONG) and table.modes == ("greedy", "greedy")
    i = table.ids.index("mmlu_astronomy/00003")
    assert table.labels[i].tolist() == [False, False]
    assert table.labels[table.ids.index("mmlu_astronomy/00004")].tolist() == [True, True]
    assert "1 contaminated prompt(s) left out" in bank.meta.notes
    kept = load_bank(import_routellm(mmlu_like, tmp_path / "all", keep_contaminated=True))
    assert len(kept.problems) == 10
    assert not is_correct(LOGGED_WRONG, LOGGED_RIGHT) and is_correct(LOGGED_RIGHT, LOGGED_RIGHT)


def test_responses_are_counted_kept_and_regraded(tmp_path) -> None:
    questions = ["Tom has 3 apples and buys 4 more. How many?", "What is 10 minus 7?"]
    src = write_csv(tmp_path / "gsm.csv",
                    ["prompt", WEAK, STRONG, WEAK + "_response", STRONG + "_response"],
                    [[questions[0], "True", "False", "He has 3 + 4 = 7.\n#### 7",
                      "The answer is 7.5 apples."],
                     [questions[1], "False", "True", "10 - 7 = 4 #### 4",
                      "10 - 7 = 3. The answer is 3."]])
    gold = tmp_path / "gold.jsonl"
    gold.write_text("".join(json.dumps({"question": q, "answer": f"... #### {a}"}) + "\n"
                            for q, a in zip(questions, ("7", "3"))))
    bank = load_bank(import_routellm(src, tmp_path / "bank", gold=gold, keep_text=True))
    rec = bank.record("gsm/00000", STRONG, "greedy")
    assert rec.samples[0].answer == "7.5" and rec.samples[0].text.startswith("The answer")
    assert rec.samples[0].tokens > 3
    assert bank_table(bank).labels.tolist() == [[True, False], [False, True]]
    assert "2 agree / 0 differ" in bank.meta.notes
    plain = load_bank(import_routellm(src, tmp_path / "plain"))
    assert plain.record("gsm/00000", WEAK, "greedy").samples[0].text is None


def test_other_models_need_prices(tmp_path) -> None:
    src = write_csv(tmp_path / "x.csv", ["prompt", "small-llm", "big-llm"],
                    [[mc_prompt(0), "True", "True"], [mc_prompt(1), "False", "True"]])
    with pytest.raises(BankError, match=r"no price for model\(s\) \['small-llm', 'big-llm'\]"):
        import_routellm(src, tmp_path / "bank")
    bank = load_bank(import_routellm(src, tmp_path / "bank",
                                     prices={"small-llm": (0.1, 0.2), "big-llm": (1, 4)}))
    assert bank.meta.ladder == ("small-llm", "big-llm")
    assert bank.meta.cost.of("big-llm").output == pytest.approx(20)
    assert ROUTELLM_USD.of(STRONG).output == pytest.approx(50)


@pytest.mark.parametrize("header, rows, match", [
    (["question", WEAK, STRONG], [["q", "True", "False"]], "no `prompt` column"),
    (["prompt"], [["q"]], "no model columns"),
    (["prompt", WEAK], [["q", "maybe"]], r"x.csv:2: column .* must be True or False"),
    (["prompt", WEAK], [["q", "True", "extra"]], "3 cells, the header has 2"),
    (["prompt", WEAK, "ghost_response"], [["q", "True", "t"]], "name no model column"),
    (["prompt", WEAK], [["  ", "True"]], "empty prompt"),
])
def test_csv_without_the_expected_columns_is_refused(tmp_path, header, rows, match) -> None:
    src = write_csv(tmp_path / "x.csv", header, rows)
    with pytest.raises(BankError, match=match):
        import_routellm(src, tmp_path / "bank")


def test_sources_that_are_not_routellm_logs(tmp_path, mmlu_like) -> None:
    with pytest.raises(BankError, match="does not exist"):
        import_routellm(tmp_path / "nope", tmp_path / "bank")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BankError, match="holds no CSV files"):
        import_routellm(tmp_path / "empty", tmp_path / "bank")
    write_csv(mmlu_like / "responses" / "mmlu_other.csv", ["prompt", WEAK],
              [[mc_prompt(9), "True"]])
    with pytest.raises(BankError, match="must name the same models"):
        import_routellm(mmlu_like, tmp_path / "bank")
    free = write_csv(tmp_path / "free.csv", ["prompt", WEAK, STRONG],
                     [["Write a poem.", "True", "True"]])
    with pytest.raises(BankError, match="--completion-tokens"):
        import_routellm(free, tmp_path / "bank")
    bank = load_bank(import_routellm(free, tmp_path / "bank", completion_tokens=200))
    assert bank.record("free/00000", WEAK, "greedy").samples[0].tokens == 200
    with pytest.raises(BankError, match="already exists"):
        import_routellm(free, tmp_path / "bank")


def test_cli_imports_and_reports_bad_input(tmp_path, mmlu_like, capsys) -> None:
    assert cli_main(["bank", "import-routellm", str(mmlu_like), str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "wrote bank" in out and "contaminated" in out
    bad = write_csv(tmp_path / "bad.csv", ["text", "m"], [["q", "True"]])
    assert cli_main(["bank", "import-routellm", str(bad), str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "no `prompt` column" in err and "Traceback" not in err
    assert not (tmp_path / "c").exists()


@pytest.mark.skipif(not (SHARED_DATA / "routellm_gsm8k").is_dir(),
                    reason=f"needs RouteLLM's GSM8K logs at {SHARED_DATA / 'routellm_gsm8k'}")
def test_real_gsm8k_logs_import_with_published_accuracies(tmp_path) -> None:
    bank = load_bank(import_routellm(SHARED_DATA / "routellm_gsm8k", tmp_path / "gsm"))
    table = bank_table(bank)
    assert len(table.ids) == 1319 - 12  # RouteLLM's contaminated prompts left out
    acc = table.labels.mean(0)
    assert abs(acc[0] - 842 / 1319) < 0.01 and abs(acc[1] - 1130 / 1319) < 0.01


def test_single_answer_logs_can_be_tuned_with_a_greedy_lower_rung(tmp_path) -> None:
    """A bank of one greedy answer per model (RouteLLM's logs) tunes as `weak:greedy,strong`:
    the cheaper model needs no sampled votes when its rung names its mode."""
    from tts.evaluate import BankArrays
    from tts.tuning import run_tune

    src = tmp_path / "logs"
    write_csv(src / "responses" / "mmlu_astronomy.csv", ["prompt", WEAK, STRONG],
              [[mc_prompt(i), str(i % 3 == 0), str(i % 5 != 0)] for i in range(40)])
    bank = load_bank(import_routellm(src, tmp_path / "bank"))
    out = run_tune(BankArrays.from_bank(bank), [f"{WEAK}:greedy", STRONG],
                   objective="accuracy", max_cost_share=0.6, trials=3, folds=2, seeds=(0,),
                   heldout_seeds=(5,), margin=1.0, count_prompt=False)
    assert out["policy"].levels[0].rungs[0].mode == "greedy"
    assert 0 <= out["report"]["heldout"]["accuracy"] <= 1
