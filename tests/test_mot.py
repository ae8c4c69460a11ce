"""The MoT GSM8K import reproduces the accuracies computed directly from the raw files."""

import json

import pytest

import tts
from tts.answers import count_votes, is_correct
from tts.bank import load_bank
from tts.mot import import_mot

from .conftest import MOT_DIR, requires_shared


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
