"""bench/drift.py's parts on the bundled banks: splits hold whole groups, the GSM8K+DATE bank
holds both banks' records on the shared models, a deployment's numbers are the replay engine's,
and the measures mean what they say."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from .test_drift_guard import policy

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))
_spec = importlib.util.spec_from_file_location("drift_bench", BENCH / "drift.py")
drift = importlib.util.module_from_spec(_spec)
sys.modules["drift_bench"] = drift  # dataclasses look their module up
_spec.loader.exec_module(drift)


def test_splits_hold_whole_groups() -> None:
    stream = drift.date_stream()
    for seed in (0, 1):
        a, b = drift.split_groups(stream, seed)
        assert set(a).isdisjoint(b) and sorted(a + b) == sorted(stream.bank.problems)
        ga, gb = {stream.group(p) for p in a}, {stream.group(p) for p in b}
        assert ga.isdisjoint(gb) and len(ga) == 10 and len(gb) == 9
    assert drift.split_groups(stream, 0) != drift.split_groups(stream, 1)
    a, b = drift.split_groups(stream, 0)
    assert drift.split_groups(drift.date_swapped_stream(), 3) == (b, a)


def test_gsm8k_date_bank_is_both_on_shared_models(tmp_path) -> None:
    stream = drift.gsm8k_date_stream(tmp_path)
    assert stream.ladder == ("llama-2-13b", "gpt-4")
    a, b = drift.split_groups(stream, 5)  # the split is fixed: GSM8K, then DATE
    assert all(p.startswith("gsm8k") for p in a) and all(p.startswith("date") for p in b)
    assert len(a) == 300 and len(b) == 171
    assert stream.bank.record("date-0", "gpt-4", "greedy").samples
    assert {m for _, m, _ in stream.bank.records} == set(stream.ladder)


def test_a_deployment_is_the_replay_engine_and_measures_compare_with_top() -> None:
    stream = drift.date_stream()
    a, b = drift.split_groups(stream, 0)
    questions = a[:30] + b[:30]
    pol = policy(0.9)
    guarded = drift.run_deployment(stream, pol, questions, seed=3, audit_rate=0.5)
    static = drift.run_deployment(stream, pol, questions, seed=3)
    top = drift.run_deployment(stream, drift.top_policy(pol), questions, seed=3)
    assert guarded["correct"] == static["correct"] and guarded["cost"] == static["cost"]
    assert np.all(np.diff(guarded["audit_spent"]) >= 0) and guarded["audit_spent"][-1] > 0
    assert 10 <= guarded["audits"] <= 50 and guarded["plan"] == [0] * 60
    run = {"shift": 30, "deployments": {"static": static, "guarded": guarded, "top": top}}
    m = drift.measures(run)
    top_post = np.mean(top["correct"][30:])
    assert m["static"]["post_shift_loss_vs_top"] == pytest.approx(
        top_post - np.mean(static["correct"][30:]))
    assert m["top"]["cost_share"] == 1.0 and m["static"]["cost_share"] < 0.5
    assert all(t > 0 for t in top["cost"])  # GPT-4 answered every request
    assert m["top"]["pre_shift_disagreement"] == m["top"]["post_shift_disagreement"] == 0.0
    assert guarded["disagree"] == static["disagree"] and 0 < m["static"][
        "pre_shift_disagreement"] < 1
    assert m["guarded"]["cost_share"] == pytest.approx(
        m["static"]["cost_share"] + guarded["audit_spent"][-1] / np.sum(top["cost"]))
    assert m["guarded"]["audit_rate"] == guarded["audits"] / 60
    assert m["guarded"]["requests_to_alarm"] is None and m["guarded"]["false_alarms"] == 0


def test_alarm_numbers_split_the_signals() -> None:
    events = [{"request": 40, "event": "novelty alarm"}, {"request": 40, "event": "safer",
                                                           "signal": "novelty"},
              {"request": 90, "event": "novelty clear"},
              {"request": 130, "event": "novelty alarm"},
              {"request": 131, "event": "safer", "signal": "novelty"},
              {"request": 180, "event": "alarm"}, {"request": 181, "event": "safer",
                                                   "signal": "audit"}]
    got = drift.alarm_numbers(events, 100)
    assert got["requests_to_novelty_alarm"] == 30 and got["requests_to_audit_alarm"] == 80
    assert got["requests_to_alarm"] == 30 and got["false_novelty_alarms"] == 1
    assert got["false_audit_alarms"] == 0 and got["false_alarms"] == 1
    assert got["safer_moves_on_novelty"] == 2
    none = drift.alarm_numbers([], 100)
    assert none["requests_to_alarm"] is None and none["false_alarms"] == 0
