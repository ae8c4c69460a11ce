"""Bad input, in one place: every row is an input a user (or a broken file) can give, and the
clear error it must get, a TTSError naming the argument or the file (and line), never a raw
TypeError / KeyError / OverflowError / RecursionError or a silent acceptance.

The README's "Bad input" table lists the same cases.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import tts
from tts.bank import load_bank, save_bank
from tts.errors import BankError, TTSError, ValidationError

from .conftest import make_bank

HUGE = 10**400


# ---- bank files ----------------------------------------------------------------------------
@pytest.fixture
def bank_dir(tmp_path: Path) -> Path:
    save_bank(make_bank(n_problems=2), tmp_path / "b")
    return tmp_path / "b"


def _lines(bank_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (bank_dir / "samples.jsonl").read_text().splitlines()]


def _write_lines(bank_dir: Path, records: list[dict]) -> None:
    (bank_dir / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def _edit_meta(bank_dir: Path, **changes) -> None:
    meta = json.loads((bank_dir / "meta.json").read_text())
    meta.update(changes)
    (bank_dir / "meta.json").write_text(json.dumps(meta))


def _non_utf8_samples(d: Path) -> None:
    data = (d / "samples.jsonl").read_bytes().split(b"\n")
    data[1] = data[1].replace(b'"question', b'"\xff question', 1)
    (d / "samples.jsonl").write_bytes(b"\n".join(data))


def _replace_by_folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _duplicate_record(d: Path) -> None:
    recs = _lines(d)
    _write_lines(d, recs + [recs[0]])


def _two_questions(d: Path) -> None:
    recs = _lines(d)
    other = dict(recs[0], mode="other-mode", question="a different question?")
    _write_lines(d, recs + [other])


def _huge_prompt_tokens(d: Path) -> None:
    recs = _lines(d)
    recs[1]["prompt_tokens"] = HUGE
    _write_lines(d, recs)


BANK_CASES = {
    "non-UTF-8 byte in samples.jsonl": (_non_utf8_samples, r"samples\.jsonl:2: not UTF-8"),
    "non-UTF-8 byte in meta.json": (
        lambda d: (d / "meta.json").write_bytes(b"\xff" + (d / "meta.json").read_bytes()),
        r"meta\.json:1: not UTF-8"),
    "folder in place of meta.json": (lambda d: _replace_by_folder(d / "meta.json"),
                                     r"meta\.json is a folder, not a file"),
    "folder in place of samples.jsonl": (lambda d: _replace_by_folder(d / "samples.jsonl"),
                                         r"samples\.jsonl is a folder, not a file"),
    "deeply nested meta.json": (
        lambda d: (d / "meta.json").write_text("[" * 100_000 + "]" * 100_000),
        r"meta\.json: JSON nested too deeply"),
    "deeply nested samples line": (
        lambda d: (d / "samples.jsonl").write_text("[" * 100_000 + "]" * 100_000 + "\n"),
        r"samples\.jsonl:1: JSON nested too deeply"),
    "invalid JSON in meta.json": (lambda d: (d / "meta.json").write_text('{\n"format": }'),
                                  r"meta\.json:2: not valid JSON"),
    "roles not model names": (lambda d: _edit_meta(d, roles={"small": 5}),
                              r"meta\.json: `roles` must map a role"),
    "duplicate (problem, model, mode) record": (
        _duplicate_record, r"samples\.jsonl:\d+: duplicate record for problem 'p0', model "
                           r"'s', mode 'sample' \(first at line 1\)"),
    "one problem id, two questions": (
        _two_questions, r"samples\.jsonl:\d+: problem 'p0' has a different question than at "
                        r"line 1"),
    "prompt_tokens of 10**400": (_huge_prompt_tokens,
                                 r"samples\.jsonl:2: `prompt_tokens` must be an integer in "
                                 r"\[0, 1e\+12\], got 1000.*\(401 characters\)"),
}


@pytest.mark.parametrize("case", list(BANK_CASES))
def test_bad_bank_file(bank_dir, case):
    corrupt, match = BANK_CASES[case]
    corrupt(bank_dir)
    with pytest.raises(BankError, match=match) as info:
        load_bank(bank_dir)
    assert str(bank_dir) in str(info.value)


@pytest.mark.parametrize("roles, match", [
    ({"large": "l"}, r"meta\.json: `roles` names no small model"),
    ({"small": "nobody", "large": "l"}, r"meta\.json: the small model 'nobody' in `roles` has "
                                        r"no samples"),
])
def test_bank_roles_without_the_small_model(bank_dir, roles, match):
    _edit_meta(bank_dir, roles=roles)
    bank = load_bank(bank_dir)  # a partial bank (e.g. only --role large built) still loads
    with pytest.raises(BankError, match=match):
        tts.replay_engine(bank_dir)
    with pytest.raises(BankError, match=match):
        from tts.evaluate import BankArrays

        BankArrays.from_bank(bank)
