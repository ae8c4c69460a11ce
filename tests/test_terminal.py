"""Everything a model wrote (and everything read from a bank) is printed as text, never as rich
markup or terminal control: `tts solve`, `tts demo` and `tts bank info` on a bank whose answers,
questions, gold answers and model names are hostile."""

from __future__ import annotations

import json

import pytest

from tts.bank import BankMeta, Record, Sample, SampleBank, save_bank
from tts.budgets import CostModel, ModelCost
from tts.cli import main, safe
from tts.types import Problem

HOSTILE = ["[/foo]", "[link=http://x]y[/link]", "\x1b[31m7\x1b[0m", "[bold red]9", ":100:",
           "5\\", "\x1b]8;;http://evil\x077\x1b]8;;\x07", "\u202e12"]


@pytest.mark.parametrize("text, shown", [
    ("[/foo]", "[/foo]"), ("[link=http://x]y[/link]", "[link=http://x]y[/link]"),
    ("\x1b[31m7\x1b[0m", "7"), ("\x1b[2J\x1b[Hx", "x"), ("a\x1b]0;title\x07b", "ab"),
    ("a\x1b]8;;http://e\x1b\\b", "ab"), ("bell\x07\r\x08", "bell"), ("5\\", "5\\"),
    ("\u202e12", "12"), ("tab\tnew\nline", "tab     new\nline"), (None, "None"), (18, "18"),
])
def test_safe_shows_text_literally(text, shown):
    import io

    from rich.console import Console

    console = Console(width=200, emoji=False, color_system=None, file=io.StringIO())
    with console.capture() as cap:
        console.print(f"[bold]{safe(text)}[/]", highlight=False)
    assert cap.get().rstrip("\n") == shown


def hostile_bank(tmp_path, answer: str):
    """A bank whose every sample answers `answer`, with hostile questions, gold and names."""
    cost = CostModel({"m[/x]": ModelCost(1.0, 1.0), "big": ModelCost(10.0, 10.0)},
                     source="[red]source\x1b[5m")
    bank = SampleBank(BankMeta(name="bank[/b]", roles={"small": "m[/x]", "large": "big"},
                               cost=cost, tokenizer="tok\x1b[2J[/t]"))
    for i in range(3):
        pid = f"p{i}"
        bank.add_problem(Problem(f"[bold]Q{i}\x1b[2J [/q]?", id=pid, gold="[link=http://g]1[/]"))
        bank.add_record(Record(pid, "m[/x]", "sample", 10,
                               tuple(Sample(answer, 20) for _ in range(4))))
        bank.add_record(Record(pid, "big", "greedy", 10, (Sample(answer, 20),)))
    return save_bank(bank, tmp_path / "b")


def _check(out: str) -> None:
    assert "\x1b" not in out and "\u202e" not in out and "\x07" not in out


@pytest.mark.parametrize("answer", HOSTILE)
def test_solve_prints_hostile_answers_literally(tmp_path, capsys, answer):
    path = hostile_bank(tmp_path, answer)
    question = "[bold]Q0\x1b[2J [/q]?"
    argv = ["solve", question, "--bank", str(path), "--budget", "10000", "--strategy", "vote",
            "-o", "max_samples=4"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    _check(out)
    clean = safe(answer).replace("\\[", "[").replace("\\\\", "\\")
    assert f"answer  {clean}" in out or f"answer {clean}" in out, out
    assert "m[/x]: " in out
    assert main(argv + ["--json"]) == 0  # JSON keeps the answer exactly (escaped by json)
    assert json.loads(capsys.readouterr().out)["answer"] == answer


@pytest.mark.parametrize("answer", ["[/foo]", "\x1b[31m7", "[red]9", ":100:"])
def test_demo_and_bank_info_print_hostile_text_literally(tmp_path, capsys, answer):
    path = hostile_bank(tmp_path, answer)
    assert main(["demo", "--bank", str(path), "--n", "3", "--budget", "10000", "--strategy",
                 "vote", "-o", "max_samples=4"]) == 0
    out = capsys.readouterr().out
    _check(out)
    assert "bank[/b]" in out and "accuracy 0/3" in out
    assert answer.replace("\x1b[31m", "") in out
    assert main(["bank", "info", str(path)]) == 0
    out = capsys.readouterr().out
    _check(out)
    assert "m[/x]" in out and "tok[/t]" in out and "[red]source" in out


def test_error_messages_are_escaped(capsys):
    assert main(["solve", "[/x]\x1b[2J", "--budget", "100"]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err and "\x1b[2J" not in err
