"""The peers as named sweep plans: `peers` expands to them, each resolves on a bank that has
what it needs (else it is marked unavailable with the reason), vectorised sweeps equal the
engine's, and bad names are clear errors."""

import pytest

import tts
from tts.bank import load_bank
from tts.errors import UnknownNameError, ValidationError
from tts.strategies import Ladder, RandomRouter, Vote
from tts.sweep import run_sweep
from tts.sweep.peers import PEER_NAMES, peer_plan
from tts.sweep.plans import plan_entries

DATE = load_bank(tts.BUNDLED_DATE_BANK)
GSM = load_bank(tts.BUNDLED_BANK)


def test_peers_expand_and_resolve_on_the_date_bank():
    entries = plan_entries(DATE, ["vote@4", "peers"], None)
    assert [e.name for e in entries] == ["vote@4", *PEER_NAMES]
    assert not any(e.unavailable for e in entries)
    plans = {e.name: e.plan for e in entries}
    mot = plans["mot-1d-vote@0.65"]
    rung, top = mot.rungs
    assert (rung.mode, rung.mix_mode, rung.max_samples, rung.climb_below, rung.climb_split) \
        == ("sample", "pot", 20, 0.65, False)
    assert (top.role, top.mode, top.max_samples) == ("large", "sample", 3)  # GPT-4-CoT-SC
    assert plans["mot-2d-vote@0.6"].rungs[0].climb_split
    verify = plans["mot-verify"].rungs[0]
    assert verify.climb_split and verify.climb_below == 0.0
    assert isinstance(plans["esc@5"], Vote) and plans["esc@5"].window_stop
    assert plans["esc@5"].wave == 5 and plans["esc@5"].max_samples == 40
    assert plans["adaptive-consistency"].wave == 1
    assert isinstance(plans["router@0.3"], RandomRouter)
    assert plans["router@0.3"].strong.skipped


def test_mot_needs_both_representations():
    """The GSM8K bank's Llama-2-13B has program-of-thought samples only ("sample"): MoT
    cannot run there and says why; ESC and Adaptive-Consistency can."""
    entries = {e.name: e for e in plan_entries(GSM, ["peers"], None)}
    assert "'pot'" in entries["mot-1d-vote@0.6"].unavailable
    assert not entries["esc@5"].unavailable and not entries["adaptive-consistency"].unavailable
    assert isinstance(entries["router@0.3"].plan.weak, Ladder)


def test_peer_sweep_equals_the_engine():
    ids = DATE.problem_ids[:12]
    names = ["mot-1d-vote@0.6", "mot-verify", "esc@3", "router@0.5"]
    fast = run_sweep(DATE, [1e6], strategies=names, seeds=2, bootstrap=0, progress=False,
                     heldout_ids=ids, count_prompt=True)
    slow = run_sweep(DATE, [1e6], strategies=names, seeds=2, bootstrap=0, progress=False,
                     heldout_ids=ids, count_prompt=True, method="solve_many")
    key = [(r.strategy, r.accuracy, r.spend_mean, r.escalated) for r in fast.rows]
    assert key == [(r.strategy, r.accuracy, r.spend_mean, r.escalated) for r in slow.rows]


@pytest.mark.parametrize("name, match", [("mot-1d-vote@1.5", "threshold"),
                                         ("esc@0", "window"), ("router@2", "share")])
def test_bad_peer_names_are_clear_errors(name, match):
    with pytest.raises(ValidationError, match=match):
        peer_plan(name, DATE)


def test_unknown_names_list_the_peers():
    with pytest.raises(UnknownNameError, match="mot-1d-vote@T"):
        plan_entries(DATE, ["mot-3d-vote"], None)


def test_peers_follow_the_sweep_ladder():
    """With a three-tier ladder the peers run between its first and last model: Llama-2-13B
    holds 20 CoT samples per question, so ESC draws up to 20, not gpt-3.5's 40."""
    entries = {e.name: e for e in plan_entries(DATE, ["peers"], None,
                                               ["llama-2-13b", "gpt-3.5-turbo", "gpt-4"])}
    assert entries["esc@5"].plan.max_samples == 20
    r = run_sweep(DATE, [1e6], strategies=["esc@5", "mot-1d-vote@0.6"], seeds=1, bootstrap=0,
                  progress=False, heldout_ids=DATE.problem_ids[:6],
                  ladder=["llama-2-13b", "gpt-3.5-turbo", "gpt-4"])
    assert all(row.available for row in r.rows)
