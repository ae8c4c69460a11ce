"""Audits in `tts serve` (`--audit-rate r`, `--audit-bank DIR`, `--audit-guard`; see
`tts.audit` and `tts.guard`).

The served answers of tts-auto given below the top model are offered to a `tts.audit.Auditor`
after they are computed; the audits it picks go through the server's scheduler as requests of
their own (one greedy sample of the top model, under a budget of their own), so they batch
with the top model's other work and never hold up a request's answer. The statistics are in
`/metrics` (`AuditCollector`) and at `GET /v1/tts/audit` (`Auditor.snapshot()`). A policy
`tts tune` wrote (with the disagreement it expects) also gets the drift alarm; with
`--audit-guard`, the guard moves the engine along the policy's frontier of safer plans
(`drift_metrics`: tts_drift_alarm, tts_drift_alarms, tts_guard_plan, tts_guard_moves,
tts_guard_safer_moves by signal). A policy with a novelty summary also gets the novelty alarm
(`tts.novelty`; `novelty_metrics`: tts_novelty_available, tts_novelty_alarm,
tts_novelty_alarms, tts_novelty_prompts, tts_novelty_share_bound); its state is under "drift"
-> "novelty" at GET /v1/tts/audit. The novelty alarm needs no audits: with `--audit-guard` and audit rate 0
such a policy gets it and the guard, moving on novelty alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

from tts.audit import AUDIT_BUDGET, Auditor
from tts.guard import deployment_guard
from tts.serving.scheduler import Scheduler
from tts.types import Problem

__all__ = ["AuditCollector", "drift_metrics", "serve_auditor"]


def serve_auditor(scheduler: Scheduler, rate: float, *, bank: str | Path | None = None,
                  seed: int | None = 0, guard: bool = False) -> Auditor | None:
    """An Auditor whose audits run through `scheduler` (top model: its engine's last), with
    the drift alarm of the engine's policy (`tts.guard.deployment_guard`; and with `guard`
    its guard); None when `rate` is 0 and no guard moving on novelty is asked for."""
    drift = deployment_guard(scheduler.engine.policy, rate, act=guard,
                             apply=scheduler.engine.use_policy)
    if rate == 0 and drift is None:
        return None
    models = scheduler.engine.models

    def submit(problem: Problem, done: Callable[[Any], None]) -> None:
        future = scheduler.submit(problem, AUDIT_BUDGET, strategy=auditor.strategy)

        def finished(f) -> None:
            if f.cancelled():
                done(RuntimeError("cancelled"))
            elif f.exception() is not None:
                done(f.exception())
            else:
                done(f.result().result)

        future.add_done_callback(finished)

    auditor = Auditor(rate, models=list(models.values()), cost=scheduler.engine.cost,
                      role=list(models)[-1], submit=submit, seed=seed, bank=bank)
    auditor.guard = drift
    return auditor


class AuditCollector:
    """Prometheus collector of an Auditor's statistics (read when /metrics is scraped)."""

    def __init__(self, auditor: Auditor):
        self.auditor = auditor

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        snap = self.auditor.snapshot()
        audits = CounterMetricFamily("tts_audits", "Audits by deciding rung and outcome",
                                     labels=["rung", "outcome"])
        rate = GaugeMetricFamily("tts_audit_disagreement", "Share of audited answers the top "
                                 "model disagrees with, and its 95% Wilson interval",
                                 labels=["rung", "bound"])
        estimates = {"all": snap["disagreement"]["overall"],
                     **snap["disagreement"]["by_rung"]}
        for rung, est in estimates.items():
            if rung != "all":
                audits.add_metric([rung, "agree"], est["audited"] - est["disagreed"])
                audits.add_metric([rung, "disagree"], est["disagreed"])
            if est["rate"] is not None:
                rate.add_metric([rung, "estimate"], est["rate"])
            rate.add_metric([rung, "low"], est["low"])
            rate.add_metric([rung, "high"], est["high"])
        yield audits
        yield rate
        for name, text, value in (
                ("tts_audits_dropped", "Audits dropped (top model failed, or too many "
                                       "pending); their requests were answered", snap["dropped"]),
                ("tts_audits_inconclusive", "Audits whose top model gave no answer",
                 snap["inconclusive"]),
                ("tts_audit_offered", "Answers given below the top model (audit candidates)",
                 snap["offered"]),
                ("tts_audit_spent_units", "Budget units spent by audits (their own ledger)",
                 snap["ledger"]["spent"])):
            yield CounterMetricFamily(name, text, value=value)
        tokens = CounterMetricFamily("tts_audit_tokens", "Tokens audits charged per model",
                                     labels=["model"])
        for model, count in snap["ledger"]["tokens"].items():
            tokens.add_metric([model], count)
        yield tokens
        yield GaugeMetricFamily("tts_audits_pending", "Audits waiting or running",
                                value=snap["pending"])
        if snap["drift"] is not None:
            yield from drift_metrics(snap["drift"])


def drift_metrics(drift: dict[str, Any]) -> Iterator[Any]:
    """The drift alarm and guard (`DriftGuard.snapshot()`) as Prometheus metrics."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    yield GaugeMetricFamily("tts_drift_alarm", "1 while the audits' lower bound on the "
                            "disagreement with the top model exceeds the expected rate",
                            value=int(drift["alarm"]))
    yield CounterMetricFamily("tts_drift_alarms", "Drift alarms raised", value=drift["alarms"])
    yield GaugeMetricFamily("tts_drift_expected_disagreement", "Disagreement with the top "
                            "model the deployed policy's tune expected", value=drift["expected"])
    worst = max(drift["windows"], key=lambda w: w["low"])
    bound = GaugeMetricFamily("tts_drift_disagreement_bound", "Bounds on the deployment's "
                              "disagreement with the top model (window with the highest lower "
                              "bound)", labels=["bound"])
    bound.add_metric(["low"], worst["low"])
    bound.add_metric(["high"], worst["high"])
    yield bound
    plan = GaugeMetricFamily("tts_guard_plan", "Frontier index of the plan in place (0: the "
                             "deployed policy)", labels=["plan"])
    plan.add_metric([drift["plan"]], drift["plan_index"])
    yield plan
    moves = CounterMetricFamily("tts_guard_moves", "Guard moves along the frontier",
                                labels=["direction"])
    for direction, count in drift["moves"].items():
        moves.add_metric([direction], count)
    yield moves
    causes = CounterMetricFamily("tts_guard_safer_moves", "Guard moves to a safer plan, by the "
                                 "alarm that caused them", labels=["signal"])
    for signal, count in drift["moves_by_signal"].items():
        causes.add_metric([signal], count)
    yield causes
    yield from novelty_metrics(drift["novelty"])


def novelty_metrics(novelty: dict[str, Any]) -> Iterator[Any]:
    """The novelty alarm (`NoveltyMonitor.snapshot()`, or why there is none) as metrics."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    yield GaugeMetricFamily("tts_novelty_available", "1 when the served prompts are judged "
                            "against the policy's training questions (notes.novelty and the "
                            "embedding model present)", value=int(novelty["available"]))
    if not novelty["available"]:
        return
    yield GaugeMetricFamily("tts_novelty_alarm", "1 while the lower bound on the share of "
                            "novel prompts exceeds the expected share",
                            value=int(novelty["alarm"]))
    yield CounterMetricFamily("tts_novelty_alarms", "Novelty alarms raised",
                              value=novelty["alarms"])
    yield GaugeMetricFamily("tts_novelty_expected_share", "Share of novel prompts expected of "
                            "questions like the policy's training questions",
                            value=novelty["expected"])
    judged = CounterMetricFamily("tts_novelty_prompts", "Served prompts judged, by verdict",
                                 labels=["verdict"])
    judged.add_metric(["novel"], novelty["novel"])
    judged.add_metric(["familiar"], novelty["judged"] - novelty["novel"])
    judged.add_metric(["failed"], novelty["failed"])
    yield judged
    if novelty["windows"]:
        worst = max(novelty["windows"], key=lambda w: w["low"])
        bound = GaugeMetricFamily("tts_novelty_share_bound", "Bounds on the share of novel "
                                  "prompts (window with the highest lower bound)",
                                  labels=["bound"])
        bound.add_metric(["low"], worst["low"])
        bound.add_metric(["high"], worst["high"])
        yield bound

