"""`tts.novelty`: the summary of the training questions (cross-fitted threshold), the alarm
over served prompts (Wilson lower bound of the novel share in trailing windows), the drift
guard's moves on it (one per rise; back only while it is clear), bad summaries as clear
errors; with the pulled embedding model, the real thing on the bundled DATE bank's scenarios."""

from __future__ import annotations

import logging
import types

import numpy as np
import pytest

import tts
from tts.backends.replay import ReplayBackend
from tts.engine import Engine
from tts.errors import ValidationError
from tts.guard import ALARM_Z, WINDOWS, DriftGuard, drift_guard
from tts.novelty import (MIN_REQUESTS, NoveltyMonitor, NoveltySummary, fit_novelty,
                         novelty_monitor, novelty_notes)
from tts.policy import LadderLevel, single_level
from tts.strategies.ladder import Rung
from tts.tuning.folds import scenario

DIM = 16


def clusters(n: int, centres: np.ndarray, seed: int, spread: float = 0.15) -> np.ndarray:
    """n unit vectors scattered around the given unit centres."""
    rng = np.random.default_rng(seed)
    x = centres[rng.integers(len(centres), size=n)] + spread * rng.normal(size=(n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


CENTRES = np.eye(DIM, dtype=np.float32)[:4]
ELSEWHERE = np.eye(DIM, dtype=np.float32)[8:12]
ENCODER = types.SimpleNamespace(model_id="unit-test@0", dim=DIM)
"""Stands in for an encoder where every prompt's embedding is given (`prime`)."""


def summary(n: int = 400) -> NoveltySummary:
    return fit_novelty(clusters(n, CENTRES, 0), embed_model="embed", model_id="unit-test@0")


def test_threshold_is_cross_fitted_and_separates_other_questions() -> None:
    s = summary()
    assert 0.9 <= s.quantile <= 0.99 and s.questions == 400
    assert s.heldout_share == pytest.approx(1 - s.quantile, abs=0.01)
    assert s.heldout_share < s.expected < 0.1  # the upper end of its interval
    like = s.distances(clusters(2000, CENTRES, 1))
    assert (like > s.threshold).mean() < s.expected
    assert (s.distances(clusters(500, ELSEWHERE, 2)) > s.threshold).mean() == 1.0
    back = NoveltySummary.from_dict(s.to_dict())
    assert back.threshold == s.threshold and np.allclose(back.centroids, s.centroids, atol=1e-4)


def monitor(s: NoveltySummary, changes: list) -> tuple[NoveltyMonitor, list[str], list[str]]:
    m = NoveltyMonitor(s, ENCODER, z=ALARM_Z, windows=WINDOWS,
                       on_change=lambda raised, bound: changes.append((raised, bound)))
    like = [f"like {i}" for i in range(300)]
    other = [f"other {i}" for i in range(300)]
    m.prime(like + other, np.vstack([clusters(300, CENTRES, 3), clusters(300, ELSEWHERE, 4)]))
    return m, like, other


def feed(m: NoveltyMonitor, prompts: list[str]) -> None:
    for q in prompts:
        m.observe(q)
    assert m.wait(30)


def test_alarm_rises_soon_after_a_shift_and_clears_after_it(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="tts.novelty")
    changes: list = []
    m, like, other = monitor(summary(), changes)
    feed(m, like * 5)
    assert m.judged == 1500 and not m.alarm and changes == []
    for i, q in enumerate(other):
        feed(m, [q])
        if m.alarm:
            break
    assert m.alarm and i < 60, i  # every shifted prompt is novel: the bound passes quickly
    assert changes[0][0] is True and changes[0][1]["low"] > m.summary.expected
    feed(m, like * 8)
    assert not m.alarm and [c[0] for c in changes] == [True, False]
    assert "novelty alarm:" in caplog.text and "novelty alarm clear" in caplog.text
    snap = m.snapshot()
    assert snap["alarms"] == 1 and snap["judged"] == 1500 + i + 1 + 2400


def test_no_alarm_before_min_requests() -> None:
    changes: list = []
    m, _, other = monitor(summary(), changes)
    feed(m, other[:MIN_REQUESTS - 1])
    assert not m.alarm
    feed(m, other[MIN_REQUESTS - 1:MIN_REQUESTS])
    assert m.alarm


def plans():
    cheap = Rung(role="small", max_samples=1, wave=1, temperature=0.0, mode="sample")
    return [single_level(("a", "b"), (cheap,)) for _ in range(3)]


def test_guard_moves_to_the_safest_plan_once_per_rise_and_back_only_while_clear(
        caplog) -> None:
    caplog.set_level(logging.WARNING, logger="tts.guard")
    m, like, other = monitor(summary(), [])
    applied: list = []
    g = DriftGuard(plans(), ["deployed", "safer", "safest"], 0.1, act=True,
                   apply=applied.append, cooldown=200, novelty=m)

    def serve(prompts: list[str]) -> None:
        for q in prompts:
            g.request(False, q)
            assert g.wait(30)

    serve(like * 2)
    assert g.current == 0
    serve(other)  # novelty rises once: to the safest plan, however long it lasts
    assert g.current == 2 and g.moves == {"safer": 1, "cheaper": 0}
    assert g.moves_by_signal == {"audit": 0, "novelty": 1}
    assert m.alarm
    serve(like[:250])  # the cooldown has passed, but the novelty alarm has not cleared
    assert m.alarm and g.current == 2
    serve(like * 8)  # clear: back one plan per cooldown
    assert not m.alarm and g.current == 0 and g.moves["cheaper"] == 2
    assert applied[0] is g.plans[2] and applied[1] is g.plans[1] and applied[2] is g.plans[0]
    kinds = [e["event"] for e in g.events]
    assert kinds == ["novelty alarm", "safer", "novelty clear", "cheaper", "cheaper"], kinds
    assert g.events[1]["signal"] == "novelty"
    assert "novel share bounds" in caplog.text
    snap = g.snapshot()
    assert snap["novelty"]["available"] and snap["moves_by_signal"]["novelty"] == 1


@pytest.mark.parametrize("change, match", [
    (lambda d: d.pop("centroids"), "missing"),
    (lambda d: d.update(extra=1), "unknown"),
    (lambda d: d.update(centroids=[[1.0, 0.0], [1.0]]), "equally long"),
    (lambda d: d.update(centroids=[[0.0, 0.0]]), "zero row"),
    (lambda d: d.update(centroids=[[float("nan"), 1.0]]), "finite"),
    (lambda d: d.update(threshold=-1), "threshold"),
    (lambda d: d.update(expected=0.0), "expected"),
    (lambda d: d.update(model_id=""), "model_id"),
    (lambda d: d.update(questions=True), "questions"),
])
def test_bad_summary_is_a_clear_error(change, match) -> None:
    data = summary(50).to_dict()
    change(data)
    with pytest.raises(ValidationError, match=match):
        NoveltySummary.from_dict(data)


def test_a_summary_of_another_embedding_model_is_refused() -> None:
    other = types.SimpleNamespace(model_id="all-minilm-l6-v2@000000000000", dim=DIM)
    with pytest.raises(ValidationError, match="made with embedding model unit-test@0"):
        NoveltyMonitor(summary(50), other, z=ALARM_Z, windows=WINDOWS)
    narrow = types.SimpleNamespace(model_id="unit-test@0", dim=DIM + 1)
    with pytest.raises(ValidationError, match="dimensions"):
        NoveltyMonitor(summary(50), narrow, z=ALARM_Z, windows=WINDOWS)


def test_too_few_questions_get_no_summary() -> None:
    with pytest.raises(ValidationError, match="at least"):
        fit_novelty(clusters(5, CENTRES, 0), embed_model="embed", model_id="x@0")
    notes, how = novelty_notes(["q"] * 3)
    assert notes is None and "3 training questions" in how


def test_a_policy_without_a_summary_says_so() -> None:
    cheap = Rung(role="small", max_samples=1, wave=1, temperature=0.0, mode="sample")
    pol = single_level(("a", "b"), (cheap,), notes={"expected": {
        "disagreement": 0.1, "disagreement_ci95": [0.0, 0.2]}})
    g = drift_guard(pol, act=False, apply=print)
    snap = g.snapshot()["novelty"]
    assert snap["available"] is False and "no novelty summary" in snap["reason"]
    assert novelty_monitor({}, z=ALARM_Z, windows=WINDOWS)[0] is None


# ---- the real embedding model (all-MiniLM-L6-v2), on DATE's scenarios --------------------------
def _embed_pulled() -> bool:
    from tts.models.embed import embed_path
    from tts.models.registry import ModelError

    try:
        embed_path("embed")
    except ModelError:
        return False
    return True


needs_embed = pytest.mark.skipif(not _embed_pulled(), reason="the embedding model is not pulled "
                                 "(tts models pull embed)")


def date_policy():
    """The bundled DATE bank, a policy over its gpt-3.5/GPT-4 ladder whose novelty summary
    (the real embedding model) was made on half of its scenarios, its frontier the top model
    alone, and the questions of the scenarios it saw and of the others."""
    bank = tts._load(str(tts.BUNDLED_DATE_BANK))
    problems = list(bank.problems.values())
    groups = sorted({scenario(p.question) for p in problems})
    seen = set(groups[::2])
    a = [p.question for p in problems if scenario(p.question) in seen]
    b = [p.question for p in problems if scenario(p.question) not in seen]
    notes, how = novelty_notes(a)
    assert notes is not None and "centroids" in how and notes["model_id"].startswith("all-")
    top = Rung(role="large", max_samples=1, wave=1, temperature=0.0)
    cheap = Rung(role="small", max_samples=1, wave=1, temperature=0.0, mode="sample")
    pol = single_level(("gpt-3.5-turbo", "gpt-4"), (cheap,), notes={
        "novelty": notes, "expected": {"disagreement": 0.9, "disagreement_ci95": [0.8, 1.0]},
        "frontier": [{"name": "top-model", "levels": [LadderLevel(0.0, (top,)).to_dict()],
                      "expected": {"disagreement": 0.0, "disagreement_ci95": [0.0, 0.0]}}]})
    return bank, pol, a, b


@needs_embed
def test_date_scenarios_not_tuned_on_raise_the_alarm_and_move_the_guard() -> None:
    bank, pol, a, b = date_policy()
    notes = pol.notes["novelty"]
    cheap = Rung(role="small", max_samples=1, wave=1, temperature=0.0, mode="sample")
    e = Engine([ReplayBackend(bank, m) for m in ("gpt-3.5-turbo", "gpt-4")],
               cost=bank.meta.cost, policy=pol, audit_rate=0.05, audit_guard=True)
    e.guard.novelty.prime(a + b)  # one batch, instead of one prompt at a time
    for i, q in enumerate(a * 2):
        e.solve(q, 1e9, seed=i)
        assert e.audits.wait(30)
    assert e.guard.current == 0 and not e.guard.novelty.alarm
    for i, q in enumerate(b):
        e.solve(q, 1e9, seed=i)
        assert e.audits.wait(30)
        if e.guard.current:
            break
    assert e.guard.current == 1 and e.guard.moves_by_signal["novelty"] == 1
    assert i < 60, i
    bad = dict(notes, model_id="all-minilm-l6-v2@000000000000")
    with pytest.raises(ValidationError, match="made with embedding model"):
        Engine([ReplayBackend(bank, m) for m in ("gpt-3.5-turbo", "gpt-4")],
               cost=bank.meta.cost, audit_rate=0.05,
               policy=single_level(("gpt-3.5-turbo", "gpt-4"), (cheap,), notes={
                   "novelty": bad, "expected": pol.notes["expected"]}))


def test_without_audits_novelty_alone_moves_the_guard_to_the_top_model_and_back(
        pulled_embed) -> None:
    bank, pol, a, b = date_policy()
    plain = Engine([ReplayBackend(bank, m) for m in ("gpt-3.5-turbo", "gpt-4")],
                   cost=bank.meta.cost, policy=pol)  # no audits, no guard: nothing watches
    assert plain.guard is None and plain.audits is None
    e = Engine([ReplayBackend(bank, m) for m in ("gpt-3.5-turbo", "gpt-4")],
               cost=bank.meta.cost, policy=pol, audit_guard=True)  # audit_rate 0
    assert e.audits.rate == 0 and e.guard.act and e.guard.novelty is not None
    e.guard.base_cooldown = e.guard.cooldown = 100
    e.guard.novelty.prime(a + b)
    seed = iter(range(10_000))

    def serve(questions: list[str], until) -> list:
        out = []
        for q in questions:
            out.append(e.solve(q, 1e9, seed=next(seed)))
            assert e.audits.wait(30)
            if until():
                break
        return out

    serve(a * 2, lambda: False)
    assert e.guard.current == 0 and not e.guard.novelty.alarm
    got = serve(b, lambda: e.guard.current != 0)
    assert e.guard.current == 1 and e.guard.moves_by_signal == {"audit": 0, "novelty": 1}
    assert len(got) < 60 and e.guard.novelty.alarm
    after = serve(a * 10, lambda: e.guard.current == 0)
    assert e.guard.current == 0 and e.guard.moves["cheaper"] == 1, e.guard.events
    assert all(r.tokens.get("gpt-4", 0) > 0 for r in after[:-1])  # the top model alone
    kinds = [ev["event"] for ev in e.guard.events]
    assert kinds == ["novelty alarm", "safer", "novelty clear", "cheaper"], kinds
    snap = e.audits.snapshot()
    assert snap["offered"] > 0 and snap["pending"] == snap["dropped"] == 0
    assert snap["disagreement"]["overall"]["audited"] == 0  # no audit was made
    assert snap["ledger"] == {"spent": 0.0, "tokens": {}}
    assert snap["drift"]["novelty"]["judged"] == e.guard.seen


def test_metrics_show_the_novelty_alarm() -> None:
    pytest.importorskip("prometheus_client")
    from tts.serving.audit import novelty_metrics

    m, like, other = monitor(summary(), [])
    feed(m, like + other)
    got = {f.name: f for f in novelty_metrics(m.snapshot())}
    assert got["tts_novelty_available"].samples[0].value == 1
    assert got["tts_novelty_alarm"].samples[0].value == 1
    assert got["tts_novelty_alarms"].samples[0].value == 1
    verdicts = {s.labels["verdict"]: s.value for s in got["tts_novelty_prompts"].samples}
    assert verdicts["novel"] == m.novel and verdicts["novel"] + verdicts["familiar"] == 600
    bound = {s.labels["bound"]: s.value for s in got["tts_novelty_share_bound"].samples}
    assert bound["low"] > m.summary.expected
