import gzip
import json

import numpy as np
import pytest

from tts.bank import (BankWriter, is_greedy_mode, load_bank, sample_order, save_bank)
from tts.errors import BankError, ValidationError

from .conftest import make_bank


def test_save_load_roundtrip(tmp_path, small_bank):
    save_bank(small_bank, tmp_path / "b")
    loaded = load_bank(tmp_path / "b")
    assert loaded.problems == small_bank.problems
    assert loaded.records == small_bank.records
    assert loaded.meta.cost == small_bank.meta.cost
    assert loaded.find("  question   3? ").id == "p3"


def _write_bank(tmp_path, lines):
    bank = make_bank(n_problems=1)
    save_bank(bank, tmp_path / "b")
    (tmp_path / "b" / "samples.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path / "b"


GOOD = json.dumps({"problem_id": "p", "question": "q?", "gold": "1", "model": "s",
                   "mode": "sample", "prompt_tokens": 3,
                   "samples": [{"answer": "1", "tokens": 5}]})


@pytest.mark.parametrize("bad, match", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    (json.dumps({"problem_id": "p"}), "missing field"),
    (GOOD.replace('"prompt_tokens": 3', '"prompt_tokens": -1'), "prompt_tokens"),
    (GOOD.replace('"tokens": 5', '"tokens": 2.5'), r"samples\[0\].tokens"),
    (GOOD.replace('"answer": "1"', '"answer": 1'), r"samples\[0\].answer"),
    (GOOD.replace('"samples": [{"answer": "1", "tokens": 5}]', '"samples": []'), "non-empty"),
    (GOOD.replace('"model": "s"', '"model": ""'), "`model` must be a non-empty string"),
])
def test_malformed_line_names_file_and_line(tmp_path, bad, match):
    path = _write_bank(tmp_path, [GOOD, bad])
    with pytest.raises(BankError, match=match) as info:
        load_bank(path)
    assert "samples.jsonl:2" in str(info.value)


def test_missing_bank_and_meta(tmp_path):
    with pytest.raises(BankError, match="does not exist"):
        load_bank(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BankError, match="metadata .* is missing"):
        load_bank(tmp_path / "empty")
    (tmp_path / "empty" / "meta.json").write_text('{"format": "other"}')
    with pytest.raises(BankError, match="tts-bank/1"):
        load_bank(tmp_path / "empty")


def test_bank_missing_model_or_mode_is_named(small_bank):
    with pytest.raises(BankError, match="no samples of model 'gpt-9'"):
        small_bank.require("gpt-9")
    with pytest.raises(BankError, match="no 'chain' samples of l"):
        small_bank.require("l", "chain")
    with pytest.raises(BankError, match="question not found"):
        small_bank.find("what is love?")


def test_sample_order_is_seeded_permutation():
    a = sample_order("p1", "m", "sample", 3, 20)
    assert sorted(a.tolist()) == list(range(20))
    assert np.array_equal(a, sample_order("p1", "m", "sample", 3, 20))
    assert not np.array_equal(a, sample_order("p1", "m", "sample", 4, 20))
    assert not np.array_equal(a, sample_order("p2", "m", "sample", 3, 20))
    assert sample_order("p1", "m", "sample", None, 5).tolist() == [0, 1, 2, 3, 4]


def test_writer_resumes_without_duplicates(tmp_path, small_bank):
    dest = tmp_path / "b"
    items = list(small_bank.records.items())
    with BankWriter(dest, small_bank.meta, resume=True) as w:
        for (pid, _, _), rec in items[:5]:
            w.write(small_bank.problems[pid], rec)
    with BankWriter(dest, small_bank.meta, resume=True) as w:
        assert len(w.done) == 5
        for key, rec in items:
            if key not in w.done:
                w.write(small_bank.problems[key[0]], rec)
    loaded = load_bank(dest)
    assert loaded.records == small_bank.records
    lines = (dest / "samples.jsonl").read_text().splitlines()
    assert len(lines) == len(items)


def test_subset_keeps_only_given_problems(small_bank):
    sub = small_bank.subset(["p1", "p3"])
    assert sub.problem_ids == ["p1", "p3"]
    assert {k[0] for k in sub.records} == {"p1", "p3"}


def test_greedy_modes_are_greedy_or_greedy_dash_rep():
    assert is_greedy_mode("greedy") and is_greedy_mode("greedy-pot")
    assert not any(is_greedy_mode(m) for m in ("sample", "pot", "chain-512", "greedyish"))


def _gzipped(tmp_path, **kw):
    """A bank folder holding only samples.jsonl.gz (the committed form)."""
    save_bank(make_bank(**kw), tmp_path / "b")
    plain = tmp_path / "b" / "samples.jsonl"
    data = plain.read_bytes()
    plain.unlink()
    (tmp_path / "b" / "samples.jsonl.gz").write_bytes(gzip.compress(data, mtime=0))
    return tmp_path / "b", data


def test_corrupt_gzip_data_is_a_clear_error(tmp_path):
    root, _ = _gzipped(tmp_path, n_problems=30)
    packed = bytearray((root / "samples.jsonl.gz").read_bytes())
    for i in range(20, 40):  # bytes of the deflate stream's block header: zlib.error
        packed[i] ^= 0x55
    (root / "samples.jsonl.gz").write_bytes(bytes(packed))
    with pytest.raises(BankError, match=r"samples\.jsonl\.gz: corrupt gzip data"):
        load_bank(root)
    with pytest.raises(BankError, match="cannot write bank"):
        BankWriter(root, make_bank().meta)


def test_plain_and_gzip_samples_must_agree(tmp_path):
    root, data = _gzipped(tmp_path)
    (root / "samples.jsonl").write_bytes(data)
    assert len(load_bank(root).records) == len(make_bank().records)  # the same bytes: fine
    (root / "samples.jsonl").write_bytes(data.splitlines(keepends=True)[0])
    with pytest.raises(BankError, match=r"holds both .*samples\.jsonl and .*samples\.jsonl\.gz"
                                        r", and they differ"):
        load_bank(root)


def test_resume_refreshes_a_gzip_copy_an_interrupted_build_left_behind(tmp_path):
    root, data = _gzipped(tmp_path)
    lines = data.splitlines(keepends=True)
    (root / "samples.jsonl.gz").write_bytes(gzip.compress(b"".join(lines[:2])))
    (root / "samples.jsonl").write_bytes(data)  # records appended after the last copy
    with BankWriter(root, make_bank().meta) as writer:
        assert len(writer.done) == len(lines)
    assert gzip.decompress((root / "samples.jsonl.gz").read_bytes()) == data
    (root / "samples.jsonl.gz").write_bytes(gzip.compress(b"other\n"))  # not a prefix
    with pytest.raises(BankError, match="they differ"):
        BankWriter(root, make_bank().meta)


@pytest.mark.parametrize("path", [None, 123, b"bytes", ""])
def test_bank_path_of_the_wrong_type(path):
    with pytest.raises(ValidationError, match="`path` must be the path of a bank folder"):
        load_bank(path)
