"""bench/qwen_report.py's vectorised votes agree with the engine's vote counting, and its
pass@k and weighted votes mean what they say."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tts.answers import count_votes, is_correct

from .conftest import make_bank

_spec = importlib.util.spec_from_file_location(
    "qwen_report", Path(__file__).resolve().parents[1] / "bench" / "qwen_report.py")
qr = importlib.util.module_from_spec(_spec)
sys.modules["qwen_report"] = qr  # dataclasses look their module up
_spec.loader.exec_module(qr)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n_small=st.integers(1, 10), abstain=st.floats(0, 0.6))
def test_prefix_votes_match_count_votes(seed, n_small, abstain):
    bank = make_bank(n_problems=4, n_small=n_small, seed=seed, abstain=abstain)
    m = qr.load_modes(bank)[("s", "sample")]
    rng = np.random.default_rng(seed)
    order = qr.orders(m, rng, 3)
    got = qr.vote_correct(m, order)
    for q, pid in enumerate(m.questions):
        samples = bank.records[(pid, "s", "sample")].samples
        for r in range(order.shape[1]):
            for k in range(1, n_small + 1):
                votes = count_votes([samples[i].answer for i in order[q, r, :k]])
                want = bool(votes.counts) and is_correct(votes.counts[0][0],
                                                         bank.problems[pid].gold)
                assert got[q, r, k - 1] == want


def test_pass_at_k_ends_and_weighted_vote():
    bank = make_bank(n_problems=6, n_small=8, seed=3, abstain=0.2)
    m = qr.load_modes(bank)[("s", "sample")]
    p = qr.pass_at_k(m)
    assert np.isclose(p[0], m.correct.mean())
    assert np.isclose(p[-1], m.correct.any(axis=1).mean())
    assert np.all(np.diff(p) >= -1e-12)
    # all weight on one sample: the vote is that sample's answer
    order = np.tile(np.arange(8), (6, 1, 1))
    for j in range(8):
        w = np.full((6, 8), 1e-6)
        w[:, j] = 1.0
        got = qr.vote_correct(m, order, w)[:, 0, -1]
        voted = m.classes[:, j] >= 0  # an abstaining sample leaves the vote to the others
        assert np.array_equal(got[voted], m.correct[voted, j])


def test_interpolated_k_and_report_on_a_bank(tmp_path):
    curve = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.5]])
    assert np.allclose(qr.interp_k(curve, 1.5), [0.5, 0.5])
    assert np.allclose(qr.interp_k(curve, 9), curve[:, -1])
    from tts.bank import save_bank

    bank = make_bank(n_problems=12, n_small=16, seed=1)
    save_bank(bank, tmp_path / "b")
    assert qr.main(["--bank", str(tmp_path / "b"), "--out", str(tmp_path / "r"),
                    "--boot", "50"]) == 0
    text = (tmp_path / "r" / "report.md").read_text()
    assert "## 1. Per model" in text and (tmp_path / "r" / "report.png").stat().st_size > 0
    assert "has not finished" not in text  # every mode holds every question
    del bank.records[("p0", "s", "sample")]
    save_bank(bank, tmp_path / "b2")
    assert qr.main(["--bank", str(tmp_path / "b2"), "--out", str(tmp_path / "r2"),
                    "--boot", "50"]) == 0
    assert "has not finished" in (tmp_path / "r2" / "report.md").read_text()


def test_difficulty_bins_use_the_chain_lengths_held_by_the_most_questions():
    bank = make_bank(n_problems=12, n_small=16, chain_lengths=(128, 256))
    del bank.records[("p0", "s", "chain-256")]  # a length the build has not finished
    modes = qr.load_modes(bank)
    d = qr.difficulty_bins(modes, "s", "l", 3.0, np.random.default_rng(0))
    assert d["questions"] == 12 and d["chain_modes"] == ["chain-128"]
    used = {n for c in d["cells"] for n in c.get("small-chain_configs", [])}
    assert used <= {"chain-128"}


def test_forcing_effect_reads_the_first_stop_and_the_final_answer():
    from tts.bank import Record, Sample
    from tts.prompts import CONTINUE_CUE, FINAL_ANSWER_CUE

    bank = make_bank(n_problems=2, n_small=4, chain_lengths=(64,))
    gold = {pid: bank.problems[pid].gold for pid in ("p0", "p1")}
    wrong = {pid: str(int(g) + 1) for pid, g in gold.items()}
    chains = {  # (text, final answer) per problem
        "p0": [(f"so \\boxed{{{wrong['p0']}}}{CONTINUE_CUE} no, \\boxed{{{gold['p0']}}}",
                gold["p0"]),                                       # forcing fixed it
               (f"thinking{FINAL_ANSWER_CUE}{gold['p0']}}}", gold["p0"])],  # never stopped
        "p1": [(f"\\boxed{{{gold['p1']}}}{CONTINUE_CUE} hm{CONTINUE_CUE} \\boxed{{{wrong['p1']}}}"
                f"{FINAL_ANSWER_CUE}{wrong['p1']}}}", wrong["p1"]),  # forcing broke it
               (f"\\boxed{{{gold['p1']}}}", gold["p1"])],
    }
    for pid, rows in chains.items():
        bank.records[(pid, "s", "chain-64")] = Record(
            pid, "s", "chain-64", 20, tuple(Sample(a, 64, text=t) for t, a in rows))
    modes = qr.load_modes(bank)
    (row,) = qr.forcing_effect(bank, modes, "s", boot=50)
    assert row["chains"] == 4 and row["questions"] == 2
    assert row["stopped_early"] == 0.75 and row["answer_forced"] == 0.5
    # first stops: wrong, right (forced: its end), right, right
    # finals: right, right, wrong, right
    assert row["first_stop_acc"] == 0.75 and row["final_acc"] == 0.75
    assert np.isclose(row["final_minus_first"], 0.0)
    assert np.isclose(row["plain_sample_acc"], modes[("s", "sample")].correct.mean())
