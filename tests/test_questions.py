"""Question files for `tts bank build --questions` (tts.questions)."""

import json
import os

import pytest

import tts
from tts.bank import load_bank
from tts.errors import ValidationError
from tts.questions import read_questions

from .conftest import SHARED_DATA


def test_read_questions_gsm8k_and_math(tmp_path):
    f = tmp_path / "q.jsonl"
    f.write_text(json.dumps({"question": "1+1?", "answer": "so #### 2"}) + "\n\n" +
                 json.dumps({"problem": "$x$?", "answer": "\\frac{1}{2}"}) + "\n")
    problems = read_questions(f)
    assert [(p.id, p.gold) for p in problems] == [("q-0", "2"), ("q-2", "\\frac{1}{2}")]
    (tmp_path / "bad.jsonl").write_text("[1]\n")
    with pytest.raises(ValidationError, match="bad.jsonl:1"):
        read_questions(tmp_path / "bad.jsonl")
    with pytest.raises(ValidationError, match="does not exist"):
        read_questions(tmp_path / "none.jsonl")


@pytest.mark.skipif(not (SHARED_DATA / "gsm8k" / "test.jsonl").exists(),
                    reason="needs ../shared/data/gsm8k")
def test_read_real_gsm8k_golds():
    problems = read_questions(SHARED_DATA / "gsm8k" / "test.jsonl", limit=5)
    assert [p.gold for p in problems][:2] == ["18", "3"]


def test_read_questions_range_and_gsm8k_ids(tmp_path):
    folder = tmp_path / "gsm8k"
    folder.mkdir()
    rows = [json.dumps({"question": f"q{i}?", "answer": f"#### {i}"}) for i in range(10)]
    (folder / "test.jsonl").write_text("\n".join(rows) + "\n")
    problems = read_questions(folder / "test.jsonl", 3, start=4)
    assert [(p.id, p.question, p.gold) for p in problems] == [
        ("gsm8k-test-4", "q4?", "4"), ("gsm8k-test-5", "q5?", "5"), ("gsm8k-test-6", "q6?", "6")]
    assert read_questions(folder / "test.jsonl", prefix="x")[0].id == "x-0"
    with pytest.raises(ValidationError, match="from line index 10"):
        read_questions(folder / "test.jsonl", start=10)


@pytest.mark.skipif(not (SHARED_DATA / "gsm8k" / "test.jsonl").exists(),
                    reason="needs ../shared/data/gsm8k")
def test_real_gsm8k_ids_match_the_bundled_bank():
    bundled = load_bank(tts.BUNDLED_BANK)
    mine = read_questions(SHARED_DATA / "gsm8k" / "test.jsonl", 3, start=5)
    for p in mine:
        assert bundled.problems[p.id].question == p.question
    assert [p.id for p in read_questions(SHARED_DATA / "gsm8k" / "test.jsonl", 1,
                                         start=400)] == ["gsm8k-test-400"]


def test_bad_question_files_are_named(tmp_path):
    os.mkfifo(tmp_path / "q.jsonl")  # opened without waiting for a writer
    with pytest.raises(ValidationError, match=r"questions file .*q\.jsonl is a FIFO"):
        read_questions(tmp_path / "q.jsonl")
    with pytest.raises(ValidationError, match=r"questions file .*nope\.jsonl does not exist"):
        read_questions(tmp_path / "nope.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"question": "a?"}\n[1]\n')
    with pytest.raises(ValidationError, match=r"bad\.jsonl:2: expected a JSON object"):
        read_questions(tmp_path / "bad.jsonl")
