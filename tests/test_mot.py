"""MoT importer: synthetic folders for every rule and bad input (run everywhere), the real GSM8K
and DATE logs (need ../shared/data), and the bundled banks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import tts
from tts.answers import count_votes, is_correct
from tts.bank import load_bank
from tts.cli import main
from tts.errors import BankError
from tts.mot import MissingPromptsWarning, import_mot
from tts.mot.programs import _failure_rank
from tts.mot.records import _token_counter

from .conftest import MOT_DIR, SHARED_DATA, requires_shared

# Most synthetic folders have no few-shot prompts; the tests that check the warning catch it.
pytestmark = pytest.mark.filterwarnings("ignore::tts.mot.MissingPromptsWarning")

DATE_DIR = SHARED_DATA / "mot_date"
DATE_GOLD = DATE_DIR / "gold_corrected.jsonl"
requires_date = pytest.mark.skipif(
    not DATE_DIR.exists(),
    reason=f"needs the real MoT DATE logs at {DATE_DIR} (../shared/data, present in the "
           f"project's CI, absent from a fresh clone)")


# ---- synthetic MoT folders -----------------------------------------------------------------
def _put(root: Path, rel: str, data) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def _row(q: str, answer, generated: list[str], results: list | None = None) -> dict:
    return {"question": q, "answer": answer, "generated": generated,
            "results": list(results) if results is not None else list(generated)}


def _cot(ans: str, pad: str = "") -> str:
    return f"Some reasoning {pad}.\nA: {ans}"


def _pot(value: str) -> str:
    return f"x = {value!r}\nans = x"


QS = ["Today is 5/1/2021. What is the date tomorrow in MM/DD/YYYY?",
      "Today is 6/1/2021. What is the date tomorrow in MM/DD/YYYY?",
      "Today is 7/1/2021. What is the date tomorrow in MM/DD/YYYY?"]
GOLD = ["05/02/2021", "06/02/2021", "07/02/2021"]


def _date_folder(root: Path) -> Path:
    """Three tiers on three date questions, shaped like the real DATE logs."""
    for k in (1, 2):
        _put(root, f"GPT4_result/date_cot{k}.json", [
            _row(q, g, [_cot(g, f"p{k}s{j}") for j in range(3)], [g] * 3)
            for q, g in zip(QS, GOLD)])
        _put(root, f"GPT4_result/date_pot{k}.json", [
            _row(q, g, [_pot(g) + f"  # {k}{j}" for j in range(3)], [g] * 3)
            for q, g in zip(QS, GOLD)])
    _put(root, "GPT4_result/date_greedy_cot1.json",
         [_row(q, g, [_cot(g, "greedy")], [g]) for q, g in zip(QS, GOLD)])
    _put(root, "GPT3_result/date_cot1.json",
         [_row(q, g, [_cot(g, f"s{j}") for j in range(4)], [g] * 4) for q, g in zip(QS, GOLD)])
    # Llama: BIG-bench dict gold, 3 distinct samples listed twice (the logs' copies).
    for k in (1, 2):
        rows = []
        for q, g in zip(QS, GOLD):
            distinct = [_cot(g, f"llama{k}{j}") for j in range(3)]
            rows.append(_row(q, {g: 1, "01/01/2000": 0}, distinct * 2, [g] * 6))
        _put(root, f"llama2_13B_result/date_cot{k}.json", rows)
    return root


def _pid(bank, question: str) -> str:
    return bank.find(question).id


def _meta(path: Path) -> dict:
    return json.loads((path / "meta.json").read_text())


def test_tiers_become_a_ladder_with_modes(tmp_path):
    bank = load_bank(import_mot(_date_folder(tmp_path / "src"), tmp_path / "bank"))
    meta = bank.meta
    assert meta.ladder == ("llama-2-13b", "gpt-3.5-turbo", "gpt-4")
    assert dict(meta.roles) == {"small": "gpt-3.5-turbo", "large": "gpt-4"}
    assert set(meta.cost.models) == set(meta.ladder)
    assert bank.modes("gpt-4") == ["greedy", "pot", "sample"]
    assert bank.modes("llama-2-13b") == ["sample"] and bank.modes("gpt-3.5-turbo") == ["sample"]
    assert "date_cot1.json + date_cot2.json interleaved" in meta.modes["gpt-4"]["sample"]
    assert set(meta.modes) == set(meta.ladder)
    assert [bank.problems[p].gold for p in bank.problem_ids] == GOLD  # dict gold -> its key
    assert bank.problem_ids == [_pid(bank, q) for q in QS]  # the files' order
    rec = bank.records[(_pid(bank, QS[0]), "gpt-4", "sample")]
    assert len(rec.samples) == 6 and all(s.answer == GOLD[0] for s in rec.samples)
    assert all(s.text is None for r in bank.records.values() for s in r.samples)
    # Llama lists 6 = 3 distinct + 3 copies per prompt: 3 + 3 kept, interleaved.
    assert len(bank.records[(_pid(bank, QS[0]), "llama-2-13b", "sample")].samples) == 6
    assert "copies of their first 3 samples" in meta.notes


def test_interleaving_keeps_a_prompt_whose_sibling_row_is_empty(tmp_path):
    """The GSM8K bug: a cot2 row with 0 generations made zip() drop its cot1 samples."""
    src = tmp_path / "src"
    _put(src, "GPT4_result/gsm_cot1.json",
         [_row("q one?", 1, ["ans = 1", "ans = 2", "ans = 3"], [1, 2, 3]),
          _row("q two?", 2, ["ans = 4", "ans = 5", "ans = 6"], [4, 5, 6])])
    _put(src, "GPT4_result/gsm_cot2.json",
         [_row("q one?", 1, [], []), _row("q two?", 2, ["ans = 7", "ans = 8"], [7, 8])])
    bank = load_bank(import_mot(src, tmp_path / "bank", keep_text=True))
    one = bank.records[(_pid(bank, "q one?"), "gpt-4", "sample")].samples
    assert [s.answer for s in one] == ["1", "2", "3"]
    two = bank.records[(_pid(bank, "q two?"), "gpt-4", "sample")].samples
    assert [s.answer for s in two] == ["4", "7", "5", "8", "6"]  # round robin, then the rest
    assert two[1].text == "ans = 7"
    assert "rows with no generations 1" in bank.meta.notes


def test_identical_real_samples_are_not_taken_for_copies(tmp_path):
    src = tmp_path / "src"
    _put(src, "GPT4_result/gsm_cot1.json",
         [_row(f"q{i}?", 5, ["ans = 5"] * 3, [5] * 3) for i in range(3)])
    bank = load_bank(import_mot(src, tmp_path / "bank"))
    assert all(len(r.samples) == 3 for r in bank.records.values())
    assert "copies" not in bank.meta.notes


def test_copies_with_partial_runs_are_detected(tmp_path):
    """GSM8K's Llama shape: 10 distinct, then copies of [0:9] and of [0:5]; even when a
    sample equals another one by chance."""
    src = tmp_path / "src"
    rows = []
    for i in range(3):
        distinct = [f"v = {i}{j}\nans = v" for j in range(10)]
        if i == 1:
            distinct[9] = distinct[0]  # a real repeat inside the distinct samples
        listed = distinct + distinct[:9] + distinct[:5]
        rows.append(_row(f"q{i}?", 1, listed, [None] * len(listed)))
    _put(src, "llama2_13B_result/gsm_pot1.json", rows)
    bank = load_bank(import_mot(src, tmp_path / "bank"))
    assert [len(r.samples) for r in bank.records.values()] == [10, 10, 10]


def test_pot_failures_dropped_from_results_are_inferred_without_running_code(tmp_path):
    src = tmp_path / "src"
    marker = tmp_path / "executed"
    gen = [
        "ans = 1",
        f"open({str(marker)!r}, 'w').write('x')\nans = (",  # syntax error: failed
        "ans = 2",
        f"open({str(marker)!r}, 'w').write('x')\nresult = 3",  # never assigns ans: failed
        "ans = undefined_name + 1",  # reads an undefined name: failed
        "ans = 4",
    ]
    _put(src, "GPT4_result/gsm_pot1.json", [
        _row("q?", 1, gen, [1, 2, 4]),  # 3 failed runs dropped
        _row("r?", 2, gen * 2, [1, 2, 4, 1, 2, 4]),  # copied, so 3 failed of 6 distinct
        _row("s?", 3, ["ans = 1", "ans = 2", "ans = 3"], [1, 3]),  # nothing predicts: latest
    ])
    bank = load_bank(import_mot(src, tmp_path / "bank"))
    answers = {bank.problems[pid].question: [s.answer for s in r.samples]
               for (pid, _, _), r in bank.records.items()}
    assert answers["q?"] == ["1", None, "2", None, None, "4"]
    assert answers["r?"] == ["1", None, "2", None, None, "4"]
    assert answers["s?"] == ["1", "3", None]
    assert not marker.exists()
    assert "failures inferred 3, of which the static check predicted exactly 2" in \
        bank.meta.notes


def test_static_failure_check():
    assert _failure_rank("ans = (", frozenset()) == 3
    assert _failure_rank("x = 1", frozenset()) == 2
    assert _failure_rank("ans = math.sqrt(4)", frozenset()) == 1
    assert _failure_rank("import math\nans = math.sqrt(4)", frozenset()) == 0
    assert _failure_rank("ans = date(2021, 1, 1)", frozenset({"date"})) == 0
    assert _failure_rank("def f(a):\n    return [b for b in a]\nans = f([1])", frozenset()) == 0


def test_exec_aligned_answers_are_preferred(tmp_path):
    src = tmp_path / "src"
    _put(src, "GPT4_result/gsm_pot1.json",
         [_row("q?", 1, ["ans = 1", "ans = (", "ans = 3"], [1, 3])])
    _put(src, "GPT4_result/gsm_pot1_exec_aligned.json",
         [{"question_index": 41, "exec_results": [1.0, None, 3.5]}])
    bank = load_bank(import_mot(src, tmp_path / "bank"))
    assert bank.problem_ids == ["gsm8k-test-41"]
    assert [s.answer for s in bank.records[("gsm8k-test-41", "gpt-4", "sample")].samples] == \
        ["1", None, "3.5"]


def test_rows_align_by_question_text_across_orders_and_subsets(tmp_path):
    src = tmp_path / "src"
    _put(src, "GPT4_result/gsm_cot1.json",
         [_row(f"question  {i}?", i, [f"ans = {i}"], [i]) for i in (2, 0, 1)])
    _put(src, "llama2_13B_result/gsm_pot1.json",
         [_row(f"question {i}?\n", i, [f"ans = {i}"], [i]) for i in (1, 0)])
    bank = load_bank(import_mot(src, tmp_path / "bank"))
    # problems in the largest file's order; each model's answer sits with its own question
    ids = [_pid(bank, f"question {i}?") for i in (2, 0, 1)]
    assert bank.problem_ids == ids
    for pid in bank.problem_ids:
        gold = bank.problems[pid].gold
        assert bank.records[(pid, "gpt-4", "sample")].samples[0].answer == gold
    assert bank.records[(ids[1], "llama-2-13b", "sample")].samples[0].answer == "0"
    assert (ids[0], "llama-2-13b", "sample") not in bank.records  # question 2
    assert "Partial coverage of the 3 questions: llama-2-13b/sample 2" in bank.meta.notes


def test_ids_are_stable_across_imports_of_different_question_ranges(tmp_path):
    """Two folders whose files cover different questions: a question keeps its id in both,
    and a question without a dataset index never takes another's `gsm8k-test-<n>`."""
    qs = [f"Held-out question {i}: what is {i} + {i}?" for i in range(5)]

    def folder(name, first, second):
        _put(tmp_path / name, "GPT4_result/gsm_cot1.json",
             [_row(qs[i], 2 * i, [f"ans = {2 * i}"]) for i in first])
        _put(tmp_path / name, "llama2_13B_result/gsm_pot1.json",
             [_row(qs[i], 2 * i, [f"ans = {2 * i}"]) for i in second])
        bank = load_bank(import_mot(tmp_path / name, tmp_path / f"{name}-bank"))
        return {bank.problems[p].question: p for p in bank.problem_ids}

    a = folder("a", [0, 1, 2], [2, 3])
    b = folder("b", [3, 4], [4, 1, 0])
    assert all(a[q] == b[q] for q in set(a) & set(b))
    ids = {**a, **b}
    assert len(set(ids.values())) == len(qs)
    assert all(re.fullmatch(r"gsm8k-test-h[0-9a-f]{12}", i) for i in ids.values())
    # the same text twice in one file: the repeat gets its own stable id
    _put(tmp_path / "c", "GPT4_result/gsm_cot1.json",
         [_row(qs[0], 0, ["ans = 0"]), _row(qs[0], 0, ["ans = 1"])])
    twice = load_bank(import_mot(tmp_path / "c", tmp_path / "c-bank"))
    assert twice.problem_ids == [a[qs[0]], a[qs[0]] + "-2"]


def test_gold_file_overrides_labels_and_sets_ids(tmp_path):
    src = _date_folder(tmp_path / "src")
    gold = _put(tmp_path, "gold.jsonl", "\n".join(json.dumps(r) for r in [
        {"mot_index": 10, "question": QS[0], "gold_corrected": "5/3/2021"},
        {"mot_index": 11, "question": " ".join(QS[1].split()) + " ", "gold_corrected": None},
        {"mot_index": 12, "question": QS[2], "gold_corrected": GOLD[2]},
        {"mot_index": 99, "question": "not in the logs", "gold_corrected": "01/01/2000"},
    ]) + "\n")
    bank = load_bank(import_mot(src, tmp_path / "bank", gold=gold))
    assert bank.problem_ids == ["date-10", "date-11", "date-12"]
    assert [bank.problems[p].gold for p in bank.problem_ids] == ["05/03/2021", GOLD[1], GOLD[2]]
    assert "3 of 3 questions matched (4 rows), 1 labels changed, 1 kept (null)" in \
        bank.meta.notes
    assert "gold overrides from gold.jsonl" in bank.meta.source


def test_date_cot_answers_are_dates_or_nothing(tmp_path):
    src = tmp_path / "src"
    texts = ["Today is 5/1/2021.\nA: 5/2/2021", "A: May 2, 2021",
             "Sorry, the answer is 05/02/2021."]
    results = ["5/2/2021", "May 2, 2021", "Sorry, the answer is 05/02/2021."]
    _put(src, "GPT3_result/date_cot1.json", [_row(QS[0], GOLD[0], texts, results)])
    _put(src, "GPT3_result/date_pot1.json", [_row(QS[0], GOLD[0], ["ans = 1"] * 3,
                                                  ["5/2/2021", None, "05/02/2021YYY"])])
    bank = load_bank(import_mot(src, tmp_path / "bank"))
    pid = _pid(bank, QS[0])
    assert [s.answer for s in bank.records[(pid, "gpt-3.5-turbo", "sample")].samples] == \
        ["05/02/2021", None, "05/02/2021"]
    assert [s.answer for s in bank.records[(pid, "gpt-3.5-turbo", "pot")].samples] == \
        ["05/02/2021", None, "05/02/2021YYY"]


def test_prompt_tokens_come_from_source_prompts_read_without_executing(tmp_path):
    src = _date_folder(tmp_path / "src")
    _put(src, "source/date.py", "\n".join([
        "raise SystemExit('source/date.py must never be executed')",
        'date_CoT1_prompting = """Q: first prompt\\nA: 01/01/2000\\n"""',
        "date_CoT2_prompting = 'Q: the second, longer prompt with more words\\nA: 01/02/2000\\n'",
        'date_PoT1_prompting = """from datetime import date\\nans = 1\\n"""',
    ]))
    bank = load_bank(import_mot(src, tmp_path / "bank"))
    count = _token_counter()
    p1 = count('Q: first prompt\nA: 01/01/2000\n')
    p2 = count('Q: the second, longer prompt with more words\nA: 01/02/2000\n')
    q = count(QS[0])
    pid = _pid(bank, QS[0])
    assert bank.records[(pid, "gpt-4", "sample")].prompt_tokens == p1 + q + p2 + q
    assert bank.records[(pid, "gpt-4", "greedy")].prompt_tokens == p1 + q
    assert bank.records[(pid, "gpt-3.5-turbo", "sample")].prompt_tokens == p1 + q
    assert "prefixes read from source/ (cot1, cot2, pot1)" in bank.meta.notes
    with pytest.warns(MissingPromptsWarning, match=r"no few-shot prompts of task 'date' "
                                                   r"\(source/date\.py .*question only"):
        plain = load_bank(import_mot(_date_folder(tmp_path / "plain"), tmp_path / "bank2"))
    assert plain.records[(pid, "gpt-4", "sample")].prompt_tokens == q


def test_missing_prompts_are_a_warning_on_the_cli(tmp_path, capsys):
    with_prompts = _date_folder(tmp_path / "src")
    _put(with_prompts, "source/date.py", 'date_CoT1_prompting = "Q: x\\nA: 01/01/2000\\n"\n')
    assert main(["bank", "import-mot", str(with_prompts), str(tmp_path / "a")]) == 0
    assert "warning" not in capsys.readouterr().err
    assert main(["bank", "import-mot", str(_date_folder(tmp_path / "plain")),
                 str(tmp_path / "b")]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "warning: " in err and "prompt_tokens counts the question only" in err


def test_failed_import_leaves_nothing_and_dest_is_never_clobbered(tmp_path, monkeypatch):
    import tts.mot.importer

    src = _date_folder(tmp_path / "src")
    dest = tmp_path / "out" / "bank"
    _put(src, "GPT4_result/date_pot2.json", "[{")  # malformed, after other files parsed fine
    with pytest.raises(BankError, match=r"date_pot2\.json:1: not valid JSON"):
        import_mot(src, dest)
    assert not (tmp_path / "out").exists()
    (src / "GPT4_result/date_pot2.json").unlink()
    import_mot(src, dest)
    before = (dest / "samples.jsonl").read_bytes()
    with pytest.raises(BankError, match="already exists; pass --force"):
        import_mot(src, dest)

    def broken(path):  # fail after the new bank is written, before it replaces the old one
        raise BankError("validation failed")

    monkeypatch.setattr(tts.mot.importer, "load_bank", broken)
    with pytest.raises(BankError, match="validation failed"):
        import_mot(src, dest, force=True)
    monkeypatch.undo()
    assert (dest / "samples.jsonl").read_bytes() == before  # the old bank survives
    assert sorted(p.name for p in dest.parent.iterdir()) == ["bank"]  # no temp folders
    _put(src, "GPT4_result/date_greedy_pot1.json",
         [_row(q, g, ["ans = 1"], [g]) for q, g in zip(QS, GOLD)])
    load_bank(import_mot(src, dest, force=True)).require("gpt-4", "greedy-pot")
    assert sorted(p.name for p in dest.parent.iterdir()) == ["bank"]
    other = tmp_path / "precious"
    _put(other, "thesis.txt", "do not delete")
    with pytest.raises(BankError, match="not a bank folder"):
        import_mot(src, other, force=True)
    assert (other / "thesis.txt").exists()


_KILLED_IMPORT = """
import sys, time
import tts.mot.importer as importer

def stop(path):  # the new bank is written: announce it, wait for the SIGKILL
    print("written", flush=True)
    time.sleep(60)

importer.load_bank = stop
importer.import_mot(sys.argv[1], sys.argv[2], force=True)
"""


def test_a_killed_import_leaves_nothing_for_long(tmp_path):
    """SIGKILL mid-import leaves `.bank.importing-PID`; the next import removes it (its
    process is dead) and keeps the folders of imports still running."""
    import os
    import signal
    import subprocess
    import sys

    src = _date_folder(tmp_path / "src")
    dest = tmp_path / "out" / "bank"
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_IMPORT, str(src), str(dest)],
                            stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    try:
        assert proc.stdout.readline() == "written\n"
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    stale = dest.with_name(f".bank.importing-{proc.pid}")
    assert (stale / "samples.jsonl").is_file() and not dest.exists()
    running = dest.with_name(f".bank.importing-{os.getppid()}")  # a live process's import
    running.mkdir()
    load_bank(import_mot(src, dest))
    assert sorted(p.name for p in dest.parent.iterdir()) == [".bank.importing-"
                                                              f"{os.getppid()}", "bank"]
    # killed after moving the old bank aside, before renaming the new one: the old comes back
    before = (dest / "samples.jsonl").read_bytes()
    os.replace(dest, dest.with_name(f".bank.replaced-{proc.pid}"))
    with pytest.raises(BankError, match="already exists"):
        import_mot(src, dest)
    assert (dest / "samples.jsonl").read_bytes() == before


@pytest.mark.parametrize("case", ["layout", "json", "row", "gold-none", "gold-line", "conflict",
                                  "exec", "price", "results", "tasks"])
def test_bad_input_is_a_clear_error(tmp_path, case):
    src = _date_folder(tmp_path / "src")
    kwargs = {}
    if case == "layout":
        src = tmp_path / "flat"
        _put(src, "date_cot1.json", [])
        match = r"does not look like the MoT results layout: expected tier folders .*date_cot1"
    elif case == "json":
        _put(src, "GPT3_result/date_cot1.json", '[{"question": ')
        match = r"GPT3_result/date_cot1\.json:1: not valid JSON"
    elif case == "row":
        _put(src, "GPT3_result/date_cot1.json", [_row(QS[0], GOLD[0], ["a"]),
                                                 {"question": QS[1], "generated": "oops"}])
        match = r"GPT3_result/date_cot1\.json row 1: `generated` must be a list of strings"
    elif case == "gold-none":
        kwargs["gold"] = _put(tmp_path, "g.jsonl", json.dumps(
            {"question": "Something else entirely?", "gold_corrected": "01/01/2000"}) + "\n")
        match = r"g\.jsonl matches no question .*1 gold rows, 3 questions"
    elif case == "gold-line":
        kwargs["gold"] = _put(tmp_path, "g.jsonl", '{"question": "x"}\n')
        match = r"g\.jsonl:1: expected an object with `question` and `gold_corrected`"
    elif case == "conflict":
        _put(src, "GPT3_result/date_cot1.json", [_row(QS[0], "12/31/1999", ["A: 1/1/2000"])])
        match = r"GPT3_result/date_cot1\.json row 0 has gold '12/31/1999' but .* has '05/02/2021'"
    elif case == "exec":
        _put(src, "GPT4_result/date_pot1_exec_aligned.json",
             [{"question_index": i, "exec_results": [None]} for i in range(3)])
        match = r"date_pot1_exec_aligned\.json row 0: `exec_results` must list one answer per " \
                r"generation of .*date_pot1\.json row 0"
    elif case == "price":
        _put(src, "falcon_40B_result/date_cot1.json", [_row(QS[0], GOLD[0], ["A: 1/1/2000"])])
        match = r"no price for model 'falcon-40b' \(tier folder .*falcon_40B_result\)"
    elif case == "results":
        _put(src, "GPT3_result/date_pot1.json", [_row(QS[0], GOLD[0], ["ans = 1"], [1, 2])])
        match = r"GPT3_result/date_pot1\.json row 0: `results` has 2 answers for 1 generations"
    else:
        _put(src, "GPT3_result/gsm_cot1.json", [_row("q?", 1, ["ans = 1"])])
        match = r"holds several tasks \['date', 'gsm'\]; choose one with --task"
    with pytest.raises(BankError, match=match):
        import_mot(src, tmp_path / "bank", **kwargs)
    assert not (tmp_path / "bank").exists()


def test_task_option_picks_one_of_several(tmp_path):
    src = _date_folder(tmp_path / "src")
    _put(src, "GPT4_result/gsm_cot1.json", [_row("q?", 1, ["ans = 1"])])
    _put(src, "GPT4_result/gsm_chatgpt_CoT2.json", [_row("q?", 1, ["ans = 1"])])
    bank = load_bank(import_mot(src, tmp_path / "bank", task="gsm"))
    assert bank.problem_ids == [_pid(bank, "q?")] and bank.meta.name == "mot_gsm8k"
    assert len(bank.records[(_pid(bank, "q?"), "gpt-4", "sample")].samples) == 2


def test_cli_import_mot(tmp_path, capsys):
    src = _date_folder(tmp_path / "src")
    gold = _put(tmp_path, "g.jsonl", json.dumps({"question": QS[0], "gold_corrected": None}))
    dest = tmp_path / "bank"
    assert main(["bank", "import-mot", str(src), str(dest), "--gold", str(gold)]) == 0
    out = capsys.readouterr().out
    assert "3 problems" in out and "llama-2-13b < gpt-3.5-turbo < gpt-4" in out
    assert main(["bank", "import-mot", str(src), str(dest)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["bank", "import-mot", str(src), str(dest), "--force", "--keep-text"]) == 0
    bank = load_bank(dest)
    assert bank.records[(_pid(bank, QS[0]), "gpt-4", "greedy")].samples[0].text


# ---- the real GSM8K logs -------------------------------------------------------------------
def _raw():
    llama = MOT_DIR / "llama2_13B_result"
    pot = [json.loads((llama / f"gsm_pot{k}.json").read_text()) for k in (1, 2)]
    ex = [json.loads((llama / f"gsm_pot{k}_exec_aligned.json").read_text()) for k in (1, 2)]
    greedy = json.loads((MOT_DIR / "GPT4_result" / "gsm_greedy_cot1.json").read_text())
    return pot, ex, greedy


def _fmt(v):
    if v is None:
        return None
    return str(int(v)) if float(v).is_integer() else repr(float(v))


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    return load_bank(import_mot(MOT_DIR, tmp_path_factory.mktemp("bank") / "mot"))


@requires_shared
@pytest.mark.parametrize("k", [1, 5, 10, 20])
def test_replayed_vote_matches_raw_files(imported, k):
    pot, ex, _ = _raw()
    direct = 0
    for i in range(300):
        pooled = [ex[kk][i]["exec_results"][j] for j in range(10) for kk in (0, 1)][:k]
        leader = count_votes([_fmt(v) for v in pooled]).leader
        direct += is_correct(leader, str(pot[0][i]["answer"]))
    engine = tts.replay_engine(imported.path, seed=None)
    problems = [imported.problems[p] for p in imported.problem_ids]
    results = engine.solve_many(problems, 1e9, strategy="vote", max_samples=k, wave=k,
                                confidence=1.0, max_tokens=100_000)
    replayed = sum(is_correct(r.answer, imported.problems[r.problem_id].gold) for r in results)
    assert replayed == direct
    if k == 20:
        assert abs(replayed / 300 - 0.443) <= 0.01


@requires_shared
def test_readme_pooled_vote_and_gpt4_greedy(imported):
    pot, ex, greedy = _raw()
    # The data README's pooled vote pot1[:10] + pot2[:10] (first-seen tie break) is 0.443.
    acc = sum(is_correct(count_votes([_fmt(v) for v in ex[0][i]["exec_results"][:10]
                                      + ex[1][i]["exec_results"][:10]]).leader,
                         str(pot[0][i]["answer"])) for i in range(300)) / 300
    assert acc == pytest.approx(0.443, abs=0.002)
    engine = tts.replay_engine(imported.path)
    problems = [imported.problems[p] for p in imported.problem_ids]
    results = engine.solve_many(problems, 1e9, strategy="escalate", max_tokens=100_000)
    gpt4 = sum(is_correct(r.answer, imported.problems[r.problem_id].gold) for r in results) / 300
    stored = sum(is_correct(_fmt(g["prediction"]), str(g["answer"])) for g in greedy) / 300
    assert gpt4 == pytest.approx(stored, abs=0.004) and gpt4 == pytest.approx(0.97, abs=0.005)


@requires_shared
def test_gsm8k_import_modes(imported):
    assert imported.meta.ladder == ("llama-2-13b", "gpt-4")
    assert imported.modes("gpt-4") == ["greedy", "greedy-pot", "pot", "sample"]
    assert imported.modes("llama-2-13b") == ["sample"]
    assert "copies of their first 10 samples" in imported.meta.notes
    assert all(len(imported.records[(p, "llama-2-13b", "sample")].samples) == 20
               for p in imported.problem_ids)


@requires_shared
def test_bundled_bank_is_the_import_without_texts(imported):
    bundled = load_bank(tts.BUNDLED_BANK)
    assert bundled.records == imported.records
    assert bundled.problems == imported.problems
    assert all(s.text is None for r in bundled.records.values() for s in r.samples)


def test_bundled_bank_loads_without_shared_data():
    bank = load_bank(tts.BUNDLED_BANK)
    assert len(bank.problems) == 300
    assert bank.models == ["gpt-4", "llama-2-13b"]
    assert "cl100k" in bank.meta.tokenizer and "Yue et al." in bank.meta.source


# ---- the real DATE logs --------------------------------------------------------------------
@pytest.fixture(scope="module")
def date_bank(tmp_path_factory):
    return load_bank(import_mot(DATE_DIR, tmp_path_factory.mktemp("bank") / "date",
                                gold=DATE_GOLD))


def _majority(bank, model, mode, sl=slice(None)):
    return sum(is_correct(count_votes([s.answer for s in bank.records[(p, model, mode)]
                                       .samples[sl]]).leader, bank.problems[p].gold)
               for p in bank.problem_ids) / len(bank.problems)


def _raw_majority(path, gold):
    rows = json.loads(path.read_text())
    return sum(is_correct(count_votes(r["results"]).leader, gold[" ".join(r["question"].split())])
               for r in rows) / len(rows)


@requires_date
def test_date_import_matches_the_logs(date_bank):
    gold = {" ".join(q.question.split()): q.gold for q in date_bank.problems.values()}
    corrected = [json.loads(line) for line in DATE_GOLD.read_text().splitlines()]
    assert date_bank.problem_ids == [f"date-{r['mot_index']}" for r in corrected]
    assert sum(r["gold_corrected"] is not None and r["gold_corrected"] != json.loads(
        (DATE_DIR / "GPT4_result/date_cot1.json").read_text())[i]["answer"]
        for i, r in enumerate(corrected)) == 9
    # gpt-3.5 PoT prompt 1 (even positions of the interleaved record) = the stored results
    gpt35_pot1 = _majority(date_bank, "gpt-3.5-turbo", "pot", slice(0, None, 2))
    assert gpt35_pot1 == _raw_majority(DATE_DIR / "GPT3_result/date_pot1.json", gold)
    assert gpt35_pot1 == pytest.approx(0.90, abs=0.005)  # the data README
    greedy = _majority(date_bank, "gpt-4", "greedy")
    assert greedy == _raw_majority(DATE_DIR / "GPT4_result/date_greedy_cot1.json", gold)
    assert greedy == pytest.approx(0.92, abs=0.005)
    for mode in ("sample", "pot"):
        assert all(len(date_bank.records[(p, "llama-2-13b", mode)].samples) == 20
                   for p in date_bank.problem_ids)  # 10 distinct per prompt
    first = date_bank.records[("date-0", "gpt-4", "sample")]
    assert first.prompt_tokens > 1000  # both few-shot prefixes + the question, twice


@requires_date
def test_static_check_has_no_false_alarms_where_failures_are_logged():
    """GPT-3.5's DATE PoT results keep failed runs as null: the static check flags only those."""
    from tts.mot.programs import _prompt_imports, _read_prompts

    preamble = _prompt_imports(_read_prompts(DATE_DIR, "date"))
    assert {"date", "timedelta", "relativedelta"} <= preamble
    flagged = failed = false_alarms = 0
    for k in (1, 2):
        for row in json.loads((DATE_DIR / f"GPT3_result/date_pot{k}.json").read_text()):
            for code, result in zip(row["generated"], row["results"]):
                predicted = _failure_rank(code, preamble) > 0
                failed += result is None
                flagged += predicted and result is None
                false_alarms += predicted and result is not None
    assert false_alarms == 0 and flagged / failed > 0.95


@requires_date
def test_bundled_date_bank_is_the_import_without_texts(date_bank):
    bundled = load_bank(tts.BUNDLED_DATE_BANK)
    assert bundled.records == date_bank.records
    assert bundled.problems == date_bank.problems
    assert bundled.meta.ladder == date_bank.meta.ladder


def test_bundled_date_bank_loads_without_shared_data():
    bank = load_bank(tts.BUNDLED_DATE_BANK)
    assert len(bank.problems) == 171
    assert bank.meta.ladder == ("llama-2-13b", "gpt-3.5-turbo", "gpt-4")
    assert bank.modes("gpt-4") == ["greedy", "greedy-pot", "pot", "sample"]
    assert all(s.text is None for r in bank.records.values() for s in r.samples)
    assert "Yue et al." in bank.meta.source and "gold_corrected" in bank.meta.source
    data = Path(tts.BUNDLED_DATE_BANK).parent
    assert (data / "FAITHFUL_COT_LICENSE").exists() and "Faithful-COT" in \
        (data / "README.md").read_text()
    gpt4 = sum(is_correct(bank.records[(p, "gpt-4", "greedy")].samples[0].answer,
                          bank.problems[p].gold) for p in bank.problem_ids) / 171
    assert gpt4 == pytest.approx(0.924, abs=0.003)
