"""bench/qwen_policy.py: its oracle curve is the exact optimum, and the whole report runs on
the committed Qwen bank (fixed plans, tuned ladders held-out, oracle) and says what it did."""

import importlib.util
import itertools
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("qwen_policy", ROOT / "bench" / "qwen_policy.py")
qp = importlib.util.module_from_spec(_spec)
sys.modules["qwen_policy"] = qp
_spec.loader.exec_module(qp)


def brute_oracle(correct: np.ndarray, cost: np.ndarray, mean_cost: float) -> float:
    """Most questions right over every per-question choice of plan within the mean cost,
    mean over seeds."""
    plans, seeds, q = correct.shape
    out = []
    for s in range(seeds):
        best = 0
        for pick in itertools.product(range(plans), repeat=q):
            spent = sum(cost[p, s, i] for i, p in enumerate(pick))
            if spent <= mean_cost * q + 1e-9:
                best = max(best, sum(bool(correct[p, s, i]) for i, p in enumerate(pick)))
        out.append(best / q)
    return float(np.mean(out))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), plans=st.integers(1, 3), q=st.integers(1, 4),
       seeds=st.integers(1, 2), caps=st.lists(st.floats(0.0, 12.0), min_size=1, max_size=4))
def test_oracle_curve_is_the_exact_optimum(seed, plans, q, seeds, caps):
    rng = np.random.default_rng(seed)
    correct = rng.random((plans, seeds, q)) < 0.4
    cost = rng.integers(1, 10, (plans, seeds, q)).astype(float)
    got = qp.oracle_curve(correct, cost, caps)
    assert got == pytest.approx([brute_oracle(correct, cost, c) for c in caps], abs=1e-12)


def test_report_on_the_committed_bank(tmp_path):
    s = qp.run(qp.BANK, tmp_path, trials=2, folds=2, log=lambda *_: None)
    assert s["questions"] >= 16
    fixed = {f["plan"]: f for f in s["fixed_plans"]}
    assert fixed["large greedy"]["cost_share"] == 1.0
    assert fixed["large greedy"]["accuracy"] == s["large_greedy_accuracy"]
    # more small samples cost more; a chain vote of two costs about twice one chain
    shares = [fixed[f"small vote@{k}"]["cost_share"] for k in (1, 2, 4, 8, 16)]
    assert shares == sorted(shares)
    assert any(k.startswith("small chain-") for k in fixed)
    best = max(f["accuracy"] for f in s["fixed_plans"])
    assert s["oracle_over_fixed_plans"]["accuracy"] >= best
    curve = [o["accuracy"] for o in s["oracle_curve"]]
    assert curve == sorted(curve)  # more compute never hurts the oracle
    for name in ("greedy > escalate", "vote > escalate", "vote > chain > escalate"):
        e = s["tuned"][name]
        assert [p["max_cost_share"] for p in e["accuracy_vs_cost"]] == list(qp.CAPS)
        for p in e["accuracy_vs_cost"]:
            assert 0.0 <= p["heldout_accuracy"] <= 1.0 and p["heldout_cost_share"] > 0
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["fixed_plans"] == json.loads(json.dumps(s["fixed_plans"]))
    table = (tmp_path / "policy.md").read_text()
    assert "| large greedy | fixed | " in table and "oracle over fixed plans" in table
    assert (tmp_path / "policy.png").stat().st_size > 0
    assert (tmp_path / "policy.csv").read_text().count("\n") == len(qp.rows_of(s)) + 1


def test_leaving_out_an_unfinished_chain_length_counts_more_questions():
    bank = qp.load_bank(qp.BANK)
    small = bank.meta.roles["small"]
    longest = qp.chain_modes(bank, small)[-1]
    every = qp.complete_questions(bank)
    without = qp.complete_questions(bank, (longest,))
    assert set(every) <= set(without)
    assert all((p, small, m) in bank.records for p in without for m in bank.modes(small)
               if m != longest)
    assert longest not in qp.chain_modes(bank, small, (longest,))
