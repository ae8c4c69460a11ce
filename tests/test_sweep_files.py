"""Sweep files: a torn checkpoint line (a killed writer) is dropped on resume wherever the cut
falls, and `tts sweep --out` refuses unwritable places before any work starts."""

from __future__ import annotations

import os
import stat

import pytest

from tts.bank import save_bank
from tts.cli import main
from tts.cli_args import check_writable
from tts.errors import ValidationError
from tts.sweep import run_sweep, runner
from tts.sweep.evaluator import Evaluator
from tts.sweep.runner import _read_checkpoint

from .test_sweep import BUDGETS, first_questions

SETTINGS = dict(seeds=2, bootstrap=20, progress=False)


@pytest.fixture(scope="module")
def bank():
    return first_questions(20)


@pytest.fixture(scope="module")
def finished(bank, tmp_path_factory):
    """A finished sweep's checkpoint bytes, its result, and the byte offsets of its lines."""
    ckpt = tmp_path_factory.mktemp("full") / "sweep.csv"
    result = run_sweep(bank, BUDGETS, checkpoint=ckpt, **SETTINGS)
    data = ckpt.read_bytes()
    ends = [i + 1 for i, b in enumerate(data) if b == ord("\n")]
    return data, result, ends


def test_torn_last_line_is_dropped_wherever_the_cut_falls(finished, tmp_path):
    data, result, ends = finished
    per_budget = len(result.names)
    header_end = ends[0]
    first_budget_end = ends[per_budget]  # header + one budget's rows
    last_line = range(first_budget_end + 1, ends[per_budget + 1])  # every cut inside the next
    cuts = list(range(1, header_end)) + list(last_line)  # ... and inside the header
    path = tmp_path / "sweep.csv"
    for cut in cuts:
        path.write_bytes(data[:cut])
        notes: list[str] = []
        done = _read_checkpoint(path, result.config_key, result.names, result.models, notes)
        if cut < header_end:
            assert done == {} and path.read_bytes() == b"", cut
        else:
            assert list(done) == [BUDGETS[0]], cut
            assert path.read_bytes() == data[:first_budget_end], cut
        assert len(notes) == 1 and "incomplete last line" in notes[0], cut
    # A whole file is read as it is, with no note.
    path.write_bytes(data)
    notes = []
    assert len(_read_checkpoint(path, result.config_key, result.names, result.models, notes)) \
        == len(BUDGETS) and notes == []


@pytest.mark.parametrize("where", ["config", "middle", "before_newline"])
def test_cli_resumes_a_torn_checkpoint_to_the_same_result(bank, finished, tmp_path, capsys,
                                                         where):
    data, result, ends = finished
    bank_path = save_bank(bank, tmp_path / "bank")
    argv = ["sweep", "--bank", str(bank_path), "--budgets", "512,2048,131072", "--seeds", "2",
            "--bootstrap", "20", "--no-progress"]
    assert main(argv + ["--out", str(tmp_path / "full")]) == 0
    full_csv = (tmp_path / "full" / "sweep.csv").read_bytes()
    start, end = ends[len(result.names)], ends[len(result.names) + 1]
    cut = {"config": start + 7, "middle": (start + end) // 2, "before_newline": end - 1}[where]
    capsys.readouterr()
    (tmp_path / "torn").mkdir()
    (tmp_path / "torn" / "sweep.csv").write_bytes(full_csv[:cut])
    assert main(argv + ["--out", str(tmp_path / "torn")]) == 0
    captured = capsys.readouterr()
    assert "note: dropped an incomplete last line" in captured.err.replace("\n", " ")
    assert "1 budgets resumed" in captured.out
    assert (tmp_path / "torn" / "sweep.csv").read_bytes() == full_csv


# ---- unwritable --out -------------------------------------------------------------------------
@pytest.fixture
def no_work(monkeypatch):
    """Fails the test if the sweep evaluates anything."""
    def run(*args, **kwargs):
        raise AssertionError("the sweep started working before checking --out")

    monkeypatch.setattr(Evaluator, "run", run)
    monkeypatch.setattr(runner, "_load", run)


def _sweep(out, capsys) -> tuple[int, str]:
    code = main(["sweep", "--budgets", "512", "--out", str(out), "--no-progress"])
    return code, capsys.readouterr().err.replace("\n", " ")


def test_out_is_a_file(tmp_path, capsys, no_work):
    (tmp_path / "f").write_text("x")
    code, err = _sweep(tmp_path / "f", capsys)
    assert code == 2 and "is a file, not a folder" in err and "Traceback" not in err
    code, err = _sweep(tmp_path / "f" / "sub" / "dir", capsys)
    assert code == 2 and f"{tmp_path / 'f'} is not a folder" in err


def test_output_file_that_is_a_folder(tmp_path, capsys, no_work):
    (tmp_path / "o" / "sweep.png").mkdir(parents=True)
    code, err = _sweep(tmp_path / "o", capsys)
    assert code == 2 and "sweep.png exists and is not a file" in err


def _read_only_place(tmp_path):
    """A folder this process cannot write into: a 0o555 folder, or (as root, who may write
    anywhere on a normal filesystem) a path under /sys or /proc."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)
    try:
        (ro / "probe").write_text("x")
    except OSError:
        return ro / "out"
    (ro / "probe").unlink()
    for candidate in ("/sys/tts-sweep-out", "/proc/tts-sweep-out"):
        try:
            os.mkdir(candidate)
        except OSError:
            return candidate
        os.rmdir(candidate)
    pytest.skip("no unwritable place here: running as root with writable /sys and /proc")


def test_read_only_out(tmp_path, capsys, no_work):
    place = _read_only_place(tmp_path)
    code, err = _sweep(place, capsys)
    assert code == 2 and "is not writable" in err and "Traceback" not in err
    (tmp_path / "ro").chmod(0o755)


def test_checkpoint_folder_is_checked_by_the_api_too(bank, tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValidationError, match="not a folder"):
        run_sweep(bank, BUDGETS, checkpoint=tmp_path / "f" / "sweep.csv", **SETTINGS)
    assert check_writable(tmp_path / "new" / "deeper").is_dir()
