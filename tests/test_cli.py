import json

import pytest

from tts.cli import main

from .conftest import MOT_DIR, requires_shared

JANET = ("Janet’s ducks lay 16 eggs per day. She eats three for breakfast every morning and "
         "bakes muffins for her friends every day with four. She sells the remainder at the "
         "farmers' market daily for $2 per fresh duck egg. How much in dollars does she make "
         "every day at the farmers' market?")


def test_solve_json(capsys):
    assert main(["solve", JANET, "--budget", "200000", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["answer"] == "18" and out["cost"] <= 200000 and out["strategy"] == "ladder"


def test_solve_forced_strategy_with_options(capsys):
    assert main(["solve", JANET, "--budget", "5000", "--strategy", "vote", "-o", "max_samples=3",
                 "-o", "wave=3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["strategy"] == "vote" and sum(out["votes"].values()) == 3


def test_solve_rich_output(capsys):
    assert main(["solve", JANET, "--budget", "200000"]) == 0
    assert "answer" in capsys.readouterr().out


@pytest.mark.parametrize("argv, match", [
    (["solve", "", "--budget", "100"], "non-empty"),
    (["solve", JANET, "--budget", "-3"], "must be > 0"),
    (["solve", JANET, "--budget", "nan"], "NaN"),
    (["solve", JANET, "--budget", "100", "--strategy", "zzz"], "unknown strategy 'zzz'"),
    (["solve", JANET, "--budget", "100", "-o", "wave=2"], "--option needs --strategy"),
    (["solve", JANET, "--budget", "100", "--strategy", "vote", "-o", "wave"], "KEY=VALUE"),
    (["solve", JANET, "--budget", "100", "--bank", "/nonexistent"], "does not exist"),
    (["demo", "--n", "0"], "--n must be >= 1"),
])
def test_bad_input_is_one_line_exit_2(argv, match, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "error:" in err and __import__("re").search(match, err.replace("\n", " "))
    assert "Traceback" not in err


def test_demo_runs_on_bundled_bank(capsys):
    assert main(["demo", "--n", "5", "--budget", "200000"]) == 0
    assert "accuracy" in capsys.readouterr().out


def test_demo_table_fits_80_columns_without_cutting_numbers(capsys):
    """Piped output is 80 columns: every line fits, and tokens and cost are printed whole
    (the live demo's extra time column takes at most 6 more; the rows here leave room)."""
    assert main(["demo", "--n", "8", "--budget", "200000"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    rows = [line for line in lines if ("✓" in line or "✗" in line) and "(gold)" not in line
            and "wrong" not in line]
    assert len(rows) == 8
    for row in rows:
        *_, tokens, cost = row.split()
        assert "…" not in tokens + cost and tokens.replace("/", "").isdigit()
        assert len(row.rstrip()) <= 80 - 6


def test_live_demo_row_keeps_plan_and_numbers_whole_in_80_columns():
    """The widest row the live demo printed (an escalation with a wrong answer and a time
    column): plan, tokens, cost and time come out whole on the row's line, and every number
    of the votes and of the answer with its gold (70000, once cut to `(7000…`) whole too,
    within 80 columns; an answer that is not a number may be cut."""
    from io import StringIO

    from rich.console import Console

    from tts.cli import _answer_cell, demo_table

    table = demo_table("3 questions", "caption", timed=True)
    table.add_row("Josh decides to flip a house.", "cascade↑", "S 65000 50000 +3\nL -10000",
                  _answer_cell("-10000", "70000", False), "1177/337", "2,123", "1239s")
    table.add_row("A long answer.", "vote", "S 1", _answer_cell(
        "the profit is 13000 dollars", "123456789012", False), "10/0", "10", "1s")
    out = StringIO()
    Console(file=out, width=80).print(table)
    lines = out.getvalue().splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    row = next(line for line in lines if "Josh" in line)
    for whole in ("cascade↑", "1177/337", "2,123", "1239s"):
        assert whole in row
    words = out.getvalue().split()
    for number in ("65000", "50000", "-10000", "(70000)", "(123456789012)"):
        assert number in words
    assert "the profit …" in out.getvalue()


def test_help_everywhere(capsys):
    for argv in (["--help"], ["solve", "--help"], ["bank", "--help"], ["bank", "import-mot",
                                                                         "--help"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 0
    assert "usage" in capsys.readouterr().out


@requires_shared
def test_bank_import_mot_and_info(tmp_path, capsys):
    assert main(["bank", "import-mot", str(MOT_DIR), str(tmp_path / "b")]) == 0
    assert main(["bank", "info", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "llama-2-13b" in out and "300 problems" in out
    assert main(["bank", "import-mot", str(tmp_path), str(tmp_path / "c")]) == 2
    assert "does not look like the MoT" in capsys.readouterr().err


def test_sigterm_ends_a_run_like_ctrl_c():
    """`kill` gives the same clean end as Ctrl-C (exit 130, cleanup runs), so a killed
    `tts bank build` shuts its vLLM engine down instead of orphaning it."""
    import subprocess
    import sys

    code = ("import os, signal, sys, time\n"
            "import tts.cli as cli\n"
            "def run(args):\n"
            "    try:\n"
            "        os.kill(os.getpid(), signal.SIGTERM)\n"
            "        time.sleep(30)\n"
            "    finally:\n"
            "        print('cleanup ran', flush=True)\n"
            "cli._run_demo = run\n"
            "sys.exit(cli.main(['demo']))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 130
    assert "cleanup ran" in done.stdout and "interrupted" in done.stderr
