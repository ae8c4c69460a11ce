"""Building banks from a backend: here a replay of real samples; live vLLM in test_backend_vllm."""

import json

import pytest

import tts
from tts.backends.replay import ReplayBackend
from tts.bank import load_bank
from tts.build import build_bank, read_questions
from tts.budgets import MOT_USD
from tts.errors import BankError, ValidationError

from .conftest import SHARED_DATA


def _source():
    bank = tts.replay_engine().backends["small"].bank
    return bank, [bank.problems[p] for p in bank.problem_ids[:7]]


def test_build_from_backend_then_replay_and_resume(tmp_path):
    bank, problems = _source()
    backend = ReplayBackend(bank, "llama-2-13b")
    dest = tmp_path / "built"
    calls = []
    build_bank(backend, problems[:4], dest, samples=5, batch=3, cost=MOT_USD, seed=3,
               progress=lambda i, n: calls.append((i, n)))
    assert calls == [(3, 4), (4, 4)]
    build_bank(backend, problems, dest, samples=5, batch=3, cost=MOT_USD, seed=3)  # resumes
    built = load_bank(dest)
    assert built.problem_ids == [p.id for p in problems]
    lines = (dest / "samples.jsonl").read_text().splitlines()
    assert len(lines) == 7  # nothing written twice
    expected = backend.generate([tts.GenRequest(prompt="x", n=5, seed=3, problem_id=p.id)
                                 for p in problems])
    for p, comps in zip(problems, expected):
        rec = built.record(p.id, "llama-2-13b", "sample")
        assert [(s.answer, s.tokens) for s in rec.samples] == [(c.answer, c.tokens)
                                                                 for c in comps]
    results = tts.solve_many(problems, 10_000, strategy="vote", max_samples=5, bank=dest)
    assert all(r.samples <= 5 and r.cost <= 10_000 for r in results)


def test_build_refuses_bad_settings_and_other_models(tmp_path):
    bank, problems = _source()
    backend = ReplayBackend(bank, "llama-2-13b")
    with pytest.raises(ValidationError, match="`samples` must be an integer >= 0"):
        build_bank(backend, problems, tmp_path / "b", samples=-1, cost=MOT_USD)
    with pytest.raises(ValidationError, match="nothing to generate"):
        build_bank(backend, problems, tmp_path / "b", samples=0, cost=MOT_USD)
    build_bank(backend, problems[:1], tmp_path / "b", samples=2, cost=MOT_USD)
    with pytest.raises(BankError, match="would mix models"):
        build_bank(ReplayBackend(bank, "gpt-4"), problems[:1], tmp_path / "b", samples=2,
                   cost=MOT_USD)


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
