"""Drift alarms and guard: compare what audits measure, and how novel the served prompts are,
with what the tune expected, and react.

`tts tune` writes into policy.json the disagreement with the top model it expects from the
deployed plan (`notes.expected.disagreement`, cross-fitted: the share of questions whose answer
is not the top model's greedy answer) and a frontier of safer plans, cheapest to safest
(`notes.frontier`; it ends with the top model alone where that is safer, and may be empty).
A `DriftGuard` watches the deployment through its audits (`tts.audit.Auditor` calls `request`
for every answer it is offered and `audited` for every audit that comes back; with audit rate
0 and the guard asked for, it audits nothing but still reports every answer, so a policy with
a novelty summary gets the novelty alarm and the guard without paying for audits:
`deployment_guard`) and:

* **Alarm.** Audits only ask about answers given below the top model; answers the top model
  gave agree with it (assumed), so the deployment's disagreement over a stretch of requests is
  at least `below * low`, where `below` is the share of those requests answered below the top
  model (counted exactly) and `low` the lower end of the Wilson interval (`ALARM_Z`) of the
  audited disagreement. The alarm is raised when that lower bound exceeds the expected rate in
  any trailing window of the requests served by the current plan that holds at least
  `MIN_AUDITS` audits (the last 250, 500, 1000 and 2000 requests, and all of them since the
  plan was put in place, up to `MAX_WINDOW`): short windows react to a shift, long ones see a
  small one. Raising it logs one warning line (logger `tts.guard`) and counts it (`alarms`).
  Disagreement is not error: where the cheaper plans beat the top model (MoT DATE), a shift
  can cost accuracy while the disagreement falls (bench/drift.py measures both).
* **Guard** (`act=True`, `tts serve --audit-guard`). On an alarm the guard puts the next safer
  plan of the frontier in place (a move forward). It moves back one step when the plan in
  place has served `cooldown` requests since it was put in place and the upper bound of its
  disagreement over them (`below * high`, the same interval) is within the expected rate: the
  cheaper plan is then tried again, and its audits judge it afresh. Hysteresis: a move forward
  from a plan the guard had moved back to (a failed try) doubles the cooldown (up to
  `MAX_COOLDOWN`), so a shift that persists costs fewer and fewer tries; a try that lasts a
  whole cooldown halves it again (down to the base). Every move logs one line and is counted
  (`moves`); after a move the windows start afresh (old audits judged another plan).

* **Novelty** (`tts.novelty`). A policy `tts tune` wrote with the embedding model pulled
  carries a summary of its training questions (`notes.novelty`); every planned request's
  prompt is then judged novel or not, label- and audit-free, and the novelty alarm is raised
  when the novel share's lower bound (`ALARM_Z`, the same `WINDOWS`) exceeds the share
  expected of questions like the training ones. Its rise moves the guard to the frontier's
  last plan, the safest (the top model alone where the frontier ends with it), once per
  rise: the frontier is ordered by disagreement measured on the tuning questions, and novel
  traffic is exactly where those numbers do not hold (bench/drift.py measured a step to the
  next plan, tuned for agreement on the tuning questions, agreeing less with the top model
  after a shift than the deployed plan did), while the top model agrees with itself on any
  traffic. The guard moves back, one plan per cooldown, only while the novelty alarm is clear
  and the audits are within expectation. Moves are counted by direction and by signal
  (`moves_by_signal`: "audit", "novelty").

The expected rate is the deployed policy's throughout: the guard's aim is the disagreement
the deployment was tuned to and accepted. Audits that come back after a move, and requests
in flight across one, count towards the plan in place when they are reported.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Any, Callable, Mapping, Sequence

from tts.audit import wilson
from tts.errors import ValidationError
from tts.novelty import NoveltyMonitor, novelty_monitor
from tts.policy import policy_expected, policy_frontier

__all__ = ["DriftGuard", "WINDOWS", "MAX_WINDOW", "COOLDOWN", "deployment_guard", "drift_guard"]

log = logging.getLogger("tts.guard")

WINDOWS = (250, 500, 1000, 2000)
"""Trailing windows (requests) the alarm tests, besides all requests since the last move."""
ALARM_Z = 2.576
"""z of the Wilson interval whose bounds the alarm and the guard read: 99% two-sided (each
bound 99.5% one-sided), wider than the 95% intervals of /metrics because the alarm looks again
after every audit, in several windows, and each look is a chance to raise it by accident."""
MIN_AUDITS = 20
"""Audits a window needs before its bound can raise the alarm (a bound on a handful of audits,
tested after every audit, would raise it by chance)."""
MAX_WINDOW = 8000
"""Requests since the last move that the alarm and the guard remember."""
COOLDOWN = 1000
"""Requests a safer plan serves before the guard tries the cheaper one again (base)."""
MAX_COOLDOWN = 64_000


class DriftGuard:
    """Alarm (and with `act`, guard) over a deployed policy and its frontier.

    Args:
        plans: the deployed policy first, then its frontier, cheapest to safest.
        names: a name per plan (logs, metrics).
        expected: the deployed policy's expected disagreement with the top model.
        act: move along the frontier (the guard); False: alarm only.
        apply: called with the plan to put in place (e.g. sets `engine.policy`).
        cooldown: base cooldown of a move back, in requests.
        novelty: the deployed policy's novelty monitor (`tts.novelty`), or None.
        novelty_off: why there is none (shown in `snapshot`).
    """

    def __init__(self, plans: Sequence[Any], names: Sequence[str], expected: float, *,
                 act: bool, apply: Callable[[Any], None], cooldown: int = COOLDOWN,
                 novelty: NoveltyMonitor | None = None, novelty_off: str = ""):
        if len(plans) != len(names) or not plans:
            raise ValidationError("a drift guard needs a name per plan.", parameter="plans")
        self.plans = tuple(plans)
        self.names = tuple(names)
        self.expected = float(expected)
        self.act = bool(act)
        self._apply = apply
        self.base_cooldown = self.cooldown = int(cooldown)
        self.z = ALARM_Z
        self._lock = threading.Lock()
        self.current = 0
        self.seen = 0
        """Requests reported so far (all plans)."""
        self.alarms = 0
        self.alarm = False
        self.moves = {"safer": 0, "cheaper": 0}
        self.moves_by_signal = {"audit": 0, "novelty": 0}
        """Moves forward by the alarm that caused them."""
        self.novelty = novelty
        self.novelty_off = novelty_off
        if novelty is not None:
            novelty.on_change = self._novelty_changed
        self.events: list[dict[str, Any]] = []
        """Alarms and moves: {"request": n, "event": ..., "plan": name, ...}."""
        self._tried = False  # the plan in place was reached by a move back
        self._reset()

    def _reset(self) -> None:
        self.epoch = getattr(self, "epoch", -1) + 1
        self.since = 0  # requests since the plan was put in place
        self.window: deque[list] = deque(maxlen=MAX_WINDOW)  # [seq, below, disagreed|None]
        self.totals = [0, 0, 0, 0]  # requests, below, audited, disagreed (since the move)
        self.alarm = False

    # ---- what the auditor reports ----------------------------------------------------------
    def request(self, below: bool, question: str | None = None) -> tuple[int, int]:
        """One answer served (`below`: given below the top model; `question`: its prompt,
        judged by the novelty monitor); returns the token that `audited` takes for its
        audit."""
        if self.novelty is not None and question is not None:
            self.novelty.observe(question)
        with self._lock:
            self.seen += 1
            self.since += 1
            self.window.append([self.seen, bool(below), None])
            self.totals[0] += 1
            self.totals[1] += bool(below)
            if self.act and self._tried and self.since == self.cooldown:
                self._tried = False  # the cheaper plan lasted a cooldown: the try was right
                self.cooldown = max(self.base_cooldown, self.cooldown // 2)
            if self.act and self.current > 0:
                self._maybe_move_back()
            return self.epoch, self.seen

    def audited(self, token: tuple[int, int], disagreed: bool) -> None:
        """The audit of the request `token` came back: the top model (dis)agreed."""
        with self._lock:
            epoch, seq = token
            if epoch != self.epoch or not self.window or seq < self.window[0][0]:
                return  # it judged a plan no longer in place, or fell out of memory
            entry = self.window[seq - self.window[0][0]]
            if entry[2] is not None:
                return
            entry[2] = bool(disagreed)
            self.totals[2] += 1
            self.totals[3] += bool(disagreed)
            self._check_alarm()

    def _novelty_changed(self, raised: bool, bound: dict[str, Any]) -> None:
        """The novelty monitor's alarm rose (a move to the safest plan) or cleared."""
        with self._lock:
            why = {"signal": "novelty", **bound}
            self._event("novelty alarm" if raised else "novelty clear", why)
            if raised and self.act and self.current + 1 < len(self.plans):
                if self._tried:
                    self.cooldown = min(2 * self.cooldown, MAX_COOLDOWN)
                self._move(len(self.plans) - 1 - self.current, why)

    # ---- rules -----------------------------------------------------------------------------
    def bounds(self) -> list[dict[str, Any]]:
        """Per trailing window of the plan in place: requests, share below the top model,
        audits, disagreements and the bounds on the deployment's disagreement."""
        out = []
        sizes = sorted({w for w in WINDOWS if w < len(self.window)} | {len(self.window)})
        entries = list(self.window)
        for size in sizes:
            part = entries[-size:] if size else []
            below = sum(e[1] for e in part)
            done = [e[2] for e in part if e[2] is not None]
            out.append(_bound(size, below, len(done), sum(done), self.z))
        return out

    def _check_alarm(self) -> None:
        judged = [b for b in self.bounds() if b["audited"] >= MIN_AUDITS]
        worst = max(judged, key=lambda b: b["low"], default=None)
        if worst is None or worst["low"] <= self.expected:
            return
        worst = {"signal": "audit", **worst}
        if not self.alarm:
            self.alarm = True
            self.alarms += 1
            self._event("alarm", worst)
            log.warning("drift alarm: plan %r disagrees with the top model at least %.3f "
                        "(%d of %d audits over the last %d requests, %.0f%% of them answered "
                        "below it) > %.3f expected", self.names[self.current], worst["low"],
                        worst["disagreed"], worst["audited"], worst["requests"],
                        100 * worst["below"], self.expected)
        if self.act and self.current + 1 < len(self.plans):
            if self._tried:
                self.cooldown = min(2 * self.cooldown, MAX_COOLDOWN)
            self._move(+1, worst)

    def _maybe_move_back(self) -> None:
        if self.since < self.cooldown or self.alarm or (
                self.novelty is not None and self.novelty.alarm):
            return
        requests, below, audited, disagreed = self.totals
        whole = _bound(requests, below, audited, disagreed, self.z)
        if whole["high"] <= self.expected:
            self._move(-1, {"signal": "audit", **whole})

    def _move(self, step: int, why: dict[str, Any]) -> None:
        before = self.current
        self.current += step
        self._tried = step < 0
        self.moves["safer" if step > 0 else "cheaper"] += 1
        if step > 0:
            self.moves_by_signal[why["signal"]] += 1
        self._apply(self.plans[self.current])
        self._event("safer" if step > 0 else "cheaper", why, before)
        what = "novel share" if why["signal"] == "novelty" else "disagreement"
        limit = self.novelty.summary.expected if why["signal"] == "novelty" else self.expected
        log.warning("drift guard: %s plan %r -> %r (%s bounds %.3f-%.3f over %d requests, "
                    "expected %.3f; next try after %d requests)",
                    "safer" if step > 0 else "cheaper", self.names[before],
                    self.names[self.current], what, why["low"], why["high"], why["requests"],
                    limit, self.cooldown)  # type: ignore[union-attr]
        self._reset()

    def _event(self, kind: str, why: dict[str, Any], before: int | None = None) -> None:
        event = {"request": self.seen, "event": kind, "plan": self.names[self.current],
                 **{k: why[k] for k in ("signal", "requests", "low", "high", "audited",
                                        "disagreed", "novel") if k in why}}
        if before is not None:
            event["from"] = self.names[before]
        self.events.append(event)

    # ---- what it shows ---------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The alarm and guard state as plain data (JSON)."""
        with self._lock:
            return {"expected": self.expected, "guard": self.act, "alarm": self.alarm,
                    "alarms": self.alarms, "plan": self.names[self.current],
                    "plan_index": self.current, "plans": list(self.names),
                    "moves": dict(self.moves), "moves_by_signal": dict(self.moves_by_signal),
                    "cooldown": self.cooldown, "requests": self.seen, "since_move": self.since,
                    "windows": self.bounds(), "events": self.events[-20:],
                    "novelty": {"available": False, "reason": self.novelty_off}
                    if self.novelty is None else self.novelty.snapshot()}

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the novelty monitor has judged every prompt it was given."""
        return self.novelty is None or self.novelty.wait(timeout)


def _bound(requests: int, below: int, audited: int, disagreed: int,
           z: float) -> dict[str, Any]:
    share = below / requests if requests else 0.0
    low, high = wilson(disagreed, audited, z)
    return {"requests": requests, "below": share, "audited": audited, "disagreed": disagreed,
            "low": share * low, "high": share * high}


def drift_guard(policy: Any, *, act: bool, apply: Callable[[Any], None],
                cooldown: int = COOLDOWN) -> DriftGuard | None:
    """The DriftGuard of a deployed policy: None when the policy states no expected
    disagreement (nothing to compare audits with) and `act` is False; a ValidationError
    when `act` is asked of a policy without a frontier of safer plans."""
    if not isinstance(getattr(policy, "notes", None), Mapping):  # e.g. a cross-fitted policy
        expected, frontier = None, []
    else:
        expected, frontier = policy_expected(policy), policy_frontier(policy)
    if act and (expected is None or not frontier):
        what = "no expected disagreement (notes.expected)" if expected is None else \
            "no frontier of safer plans (notes.frontier)"
        raise ValidationError(f"the audit guard moves to the next safer plan of the policy's "
                              f"frontier, but this policy has {what}; tune it with `tts tune` "
                              f"(which writes both into policy.json), or drop the guard.",
                              parameter="audit_guard")
    if expected is None:
        return None
    names = [str(policy.notes.get("frontier_plan", "deployed"))] + \
        [str(p.notes.get("frontier_plan", f"safer {i + 1}")) for i, (p, _) in
         enumerate(frontier)]
    novelty, off = novelty_monitor(policy.notes, z=ALARM_Z, windows=WINDOWS)
    return DriftGuard([policy] + [p for p, _ in frontier], names, expected["disagreement"],
                      act=act, apply=apply, cooldown=cooldown, novelty=novelty,
                      novelty_off=off)


def deployment_guard(policy: Any, rate: float, *, act: bool,
                     apply: Callable[[Any], None]) -> DriftGuard | None:
    """The DriftGuard of a deployment auditing a share `rate` of its answers: `drift_guard`'s
    when `rate` > 0. With `rate` 0 only when `act` asks for the guard, and then one with a
    novelty monitor (novelty needs no audits): without audits or a guard nothing is built, so
    a tuned policy used plainly never loads an embedding model. `act` with `rate` 0 and no
    novelty monitor is a ValidationError: the guard would have nothing to move on."""
    if rate > 0:
        return drift_guard(policy, act=act, apply=apply)
    if not act:
        return None
    notes = getattr(policy, "notes", None)
    guard = drift_guard(policy, act=act, apply=apply) \
        if isinstance(notes, Mapping) and "novelty" in notes else None
    if guard is not None and guard.novelty is not None:
        return guard
    why = "the policy has no novelty summary (notes.novelty)" if guard is None else \
        guard.novelty_off
    raise ValidationError(f"the audit guard needs a signal to move on: give audit_rate > 0 "
                          f"(audits), or a policy with a novelty summary whose embedding "
                          f"model is pulled (`tts tune` writes notes.novelty after `tts "
                          f"models pull embed`); here {why}.", parameter="audit_guard")
