"""`tts.guard` and `Engine(audit_guard=)` on the bundled DATE bank (real gpt-3.5-turbo and GPT-4
samples): the alarm is raised when the audits' lower bound exceeds the expected disagreement
and not when it does not, the guard moves along the frontier and back (cooldown doubling after
a failed try), every move is logged and counted, and bad settings are clear errors."""

from __future__ import annotations

import logging

import pytest

import tts
from tts.backends.replay import ReplayBackend
from tts.engine import Engine
from tts.errors import ValidationError
from tts.audit import wilson
from tts.guard import ALARM_Z, MIN_AUDITS, DriftGuard, drift_guard
from tts.policy import LadderLevel, single_level
from tts.strategies.ladder import Rung

BANK = tts._load(str(tts.BUNDLED_DATE_BANK))
LADDER = ("gpt-3.5-turbo", "gpt-4")
QUESTIONS = [p.question for p in BANK.problems.values()]
CHEAP = Rung(role="small", max_samples=1, wave=1, temperature=0.0, mode="sample")
TOP = Rung(role="large", max_samples=1, wave=1, temperature=0.0)


def policy(expected: float | None, frontier: bool = True):
    notes: dict = {}
    if expected is not None:
        notes["expected"] = {"disagreement": expected, "disagreement_ci95": [0.0, expected]}
    if frontier:
        notes["frontier"] = [{"name": "top-model", "max_cost_share": 1.0,
                              "levels": [LadderLevel(0.0, (TOP,)).to_dict()],
                              "expected": {"disagreement": 0.0,
                                           "disagreement_ci95": [0.0, 0.0]}}]
    return single_level(LADDER, (CHEAP,), notes=notes)


def engine(pol, **kw) -> Engine:
    return Engine([ReplayBackend(BANK, m) for m in LADDER], cost=BANK.meta.cost, policy=pol,
                  **kw)


def stream(e: Engine, n: int) -> list:
    """n requests one at a time (each with its own seed), audits finished after each."""
    out = []
    for i in range(n):
        out.append(e.solve(QUESTIONS[i % len(QUESTIONS)], 1e9, seed=i))
        assert e.audits.wait(30)
    return out


def test_alarm_and_guard_move_to_the_top_model_and_back(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="tts.guard")
    e = engine(policy(0.0), audit_rate=1.0, audit_guard=True)
    e.guard.base_cooldown = e.guard.cooldown = 40
    results = stream(e, 200)
    g = e.guard
    kinds = [ev["event"] for ev in g.events]
    # gpt-3.5's single answers disagree with GPT-4 on some DATE questions: > 0 expected
    assert kinds[:2] == ["alarm", "safer"]
    first = g.events[0]["request"]
    assert MIN_AUDITS <= first < 40  # every answer is audited; the alarm waits for 20
    # on the top model nothing is answered below it: no audits, the upper bound is 0, so
    # the guard tries the cheap plan again after the cooldown, which alarms again
    assert "cheaper" in kinds and g.moves["safer"] >= 2
    assert g.cooldown > 40  # a failed try doubled it
    assert g.moves["safer"] == kinds.count("safer") and g.moves["cheaper"] == kinds.count(
        "cheaper") and g.alarms == kinds.count("alarm")
    logged = [r.getMessage() for r in caplog.records]
    assert sum(m.startswith("drift alarm") for m in logged) == g.alarms
    assert sum(m.startswith("drift guard") for m in logged) == sum(g.moves.values())
    # the answers after the first move came from GPT-4 until it moved back
    back = next(ev["request"] for ev in g.events if ev["event"] == "cheaper")
    moved = g.events[1]["request"]
    assert all(r.tokens.get("gpt-4", 0) > 0 and r.tokens.get("gpt-3.5-turbo", 0) == 0
               for r in results[moved:back - 1])
    assert all(r.tokens.get("gpt-4", 0) == 0 for r in results[:moved])
    snap = e.audits.snapshot()["drift"]
    assert snap["plans"] == ["deployed", "top-model"] and snap["guard"] is True


def test_no_alarm_within_the_expected_rate() -> None:
    e = engine(policy(0.9), audit_rate=1.0, audit_guard=True)
    stream(e, 60)
    assert e.guard.alarms == 0 and e.guard.current == 0 and e.policy is e.guard.plans[0]
    snap = e.audits.snapshot()
    # its bound is what the audits say, scaled by the share answered below GPT-4 (a
    # request gpt-3.5 gave no answer to is not audited)
    window = e.guard.bounds()[-1]
    overall = snap["disagreement"]["overall"]
    assert window["audited"] == overall["audited"] and window["disagreed"] == overall["disagreed"]
    assert window["below"] == snap["offered"] / 60
    low = wilson(overall["disagreed"], overall["audited"], ALARM_Z)[0]
    assert window["low"] == pytest.approx(snap["offered"] / 60 * low)


def test_alarm_without_guard_does_not_move() -> None:
    e = engine(policy(0.0, frontier=False), audit_rate=1.0)
    stream(e, 80)
    assert e.guard is not None and not e.guard.act
    assert e.guard.alarms == 1 and e.guard.alarm and e.guard.current == 0
    assert sum(e.guard.moves.values()) == 0


def test_guard_bad_input_is_a_clear_error() -> None:
    with pytest.raises(ValidationError, match="no frontier of safer plans"):
        engine(policy(0.1, frontier=False), audit_rate=0.05, audit_guard=True)
    with pytest.raises(ValidationError, match="no expected disagreement"):
        engine(policy(None), audit_rate=0.05, audit_guard=True)
    with pytest.raises(ValidationError, match=r"give audit_rate > 0 \(audits\), or a policy "
                       r"with a novelty summary.*here the policy has no novelty summary"):
        engine(policy(0.1), audit_guard=True)
    with pytest.raises(ValidationError, match="audit_bank` needs audit_rate > 0"):
        engine(policy(0.1), audit_bank="audits")
    with pytest.raises(ValidationError, match="audit_guard"):
        engine(policy(0.1), audit_rate=0.1, audit_guard="yes")
    # the untuned default policy has neither
    with pytest.raises(ValidationError, match="no expected disagreement"):
        Engine([ReplayBackend(BANK, m) for m in LADDER], cost=BANK.meta.cost, audit_rate=0.1,
               audit_guard=True)


def test_without_audits_or_novelty_nothing_watches(tmp_path, monkeypatch) -> None:
    import numpy as np

    from tts import models, novelty
    from tts.routing import embeddings

    e = engine(policy(0.1))
    assert e.guard is None and e.audits is None
    # a novelty summary whose embedding model is not pulled here: no alarm, no guard
    monkeypatch.setenv(models.MODELS_DIR_ENV, str(tmp_path))
    monkeypatch.setattr(embeddings, "_SHARED", {})
    x = np.random.default_rng(0).normal(size=(40, 8))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    pol = policy(0.1)
    notes = {**pol.notes, "novelty": novelty.fit_novelty(x, embed_model="embed",
                                                         model_id="x@0").to_dict()}
    pol = type(pol)(pol.ladder, pol.levels, pol.prompt, notes)
    e = engine(pol)
    assert e.guard is None and e.audits is None
    with pytest.raises(ValidationError, match="or a policy with a novelty summary.*here the "
                                              "embedding model .* is not available"):
        engine(pol, audit_guard=True)


def test_stale_audits_and_windows() -> None:
    moved = []
    g = DriftGuard(["a", "b"], ["a", "b"], 0.05, act=True, apply=moved.append, cooldown=10)
    tokens = [g.request(True) for _ in range(30)]
    for t in tokens[:20]:
        g.audited(t, False)
    assert g.alarms == 0 and g.bounds()[-1]["audited"] == 20
    for t in tokens[20:]:
        g.audited(t, True)  # 10 of 30 disagree: lower bound ~0.19 > 0.05
    assert moved == ["b"] and g.current == 1 and g.since == 0
    g.audited(tokens[0], True)  # judged the old plan: ignored
    assert g.bounds()[-1]["audited"] == 0
    for _ in range(10):
        g.request(False)  # the safer plan answers at the top: within the rate
    assert moved == ["b", "a"] and g.cooldown == 10


def test_drift_guard_is_none_without_expected_rate() -> None:
    assert drift_guard(policy(None, frontier=False), act=False, apply=print) is None


def test_the_alarm_waits_for_min_audits() -> None:
    g = DriftGuard(["a"], ["a"], 0.01, act=False, apply=print)
    for _ in range(MIN_AUDITS - 1):
        g.audited(g.request(True), True)
    assert g.alarms == 0 and g.bounds()[-1]["low"] > 0.01
    g.audited(g.request(True), True)
    assert g.alarms == 1 and g.alarm


def test_cooldown_doubles_after_a_failed_try_and_halves_after_one_that_lasts() -> None:
    moved = []
    g = DriftGuard(["a", "b"], ["a", "b"], 0.05, act=True, apply=moved.append, cooldown=30)

    def alarm() -> None:
        for _ in range(MIN_AUDITS):
            g.audited(g.request(True), True)

    alarm()
    assert moved == ["b"] and g.cooldown == 30
    for _ in range(30):
        g.request(False)
    assert moved == ["b", "a"]
    alarm()  # the try failed within its cooldown
    assert moved == ["b", "a", "b"] and g.cooldown == 60
    for _ in range(60):
        g.request(False)
    assert moved[-1] == "a"
    for _ in range(60):
        g.request(True)  # the try lasts a cooldown without alarm
    assert g.cooldown == 30
    alarm()  # a later shift: no doubling
    assert moved[-1] == "b" and g.cooldown == 30 and g.moves == {"safer": 3, "cheaper": 2}
