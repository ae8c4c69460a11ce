"""Audits: how often the deployed answers disagree with the top model's, measured live.

A tuned policy is as good as the questions it was tuned on; deployed traffic has no gold
labels. An `Auditor` asks the top model too for a random share `rate` of the requests answered
below it (their deciding rung, the dearest model that generated for them, is not the top
model), one greedy sample each, off the request's path and outside its budget: each audit runs
under a budget of its own, and their spending adds up in the audit ledger (`spent`, `tokens`).
Outcomes keep a running disagreement estimate with a 95% Wilson interval, overall and per rung
(deciding model); an audit whose top-model answer is missing (it abstained) is inconclusive
and not counted in the rate. An audit that cannot run (the top backend failed, or too many are
pending) is dropped and counted, never failing the request it audits.

With `bank=` every audit is appended, flushed, to a bank folder (`tts.bank.BankWriter`, so a
killed server loses nothing written and a restart resumes it): per audited question its top
model's greedy answer (mode "greedy") and the deployed answer under its deciding model (mode
"deployed", tokens: what that model spent on the request). Questions that are not from a bank
get the id "q-" + the first 16 hex digits of the question's SHA-256. A question audited again
is counted again but written once.

Who runs the audits is the caller's `submit(problem, done)`: `Engine(audit_rate=)` runs them in
a background thread, `tts serve --audit-rate` through its scheduler, as low-priority requests.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from tts.answers import equivalent
from tts.bank import META_FILE, BankMeta, BankWriter, Record, Sample, load_bank
from tts.budgets import CostModel
from tts.errors import BankError, ValidationError
from tts.strategies import Vote
from tts.types import Problem, Result

__all__ = ["AUDIT_BANK_NAME", "Auditor", "background_auditor", "check_rate", "wilson"]

AUDIT_BANK_NAME = "audits"
"""`meta.json` name of an audit bank (an audit bank folder must hold one or nothing)."""
AUDIT_BUDGET = 1e12
"""Budget of one audit: its strategy reserves one greedy sample, so this only keeps the audit
off the request's budget; what audits spend adds up in the audit ledger."""
Submit = Callable[[Problem, Callable[[Any], None]], None]
"""`submit(problem, done)`: run the audit plan on `problem`, then call `done(result)` with its
Result, or `done(exc)` with the exception that stopped it."""


def check_rate(rate: object, parameter: str = "audit_rate") -> float:
    """`rate` as a float if it is a number in [0, 1] (not a bool, not NaN), else
    ValidationError naming it."""
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or math.isnan(rate) \
            or not 0 <= rate <= 1:
        shown = repr(rate) if len(repr(rate)) <= 40 else f"{repr(rate)[:37]}..."
        raise ValidationError(f"`{parameter}` must be a share of requests in [0, 1], got "
                              f"{type(rate).__name__} {shown}.", parameter=parameter,
                              value=rate)
    return float(rate)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a rate k/n (95% by default); (0, 1) when n is 0."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def problem_id(question: str) -> str:
    """The audit bank's id of a question not from a bank."""
    return "q-" + hashlib.sha256(question.encode("utf-8")).hexdigest()[:16]


class Auditor:
    """Chooses the requests to audit, runs them through `submit`, keeps the statistics and
    writes the audit bank.

    Args:
        rate: share of requests answered below the top model that are audited, in [0, 1];
            0 audits nothing but still reports every answer to `guard` (its novelty alarm).
        models: the engine's models, cheapest first (the last is the top model).
        cost: the engine's CostModel (written into the audit bank).
        role: the top model's role in the engine that runs audits (e.g. "large").
        submit: runs one audit (see `Submit`).
        seed: seed of the choice of audited requests.
        bank: audit bank folder (created, or resumed if it is an audit bank), or None.
        max_pending: audits waiting or running at once; more are dropped (counted).
        max_tokens: token cap of the top model's answer.
    """

    def __init__(self, rate: float, *, models: Sequence[str], cost: CostModel, role: str,
                 submit: Submit, seed: int | None = 0, bank: str | Path | None = None,
                 max_pending: int = 256, max_tokens: int = 512):
        self.rate = check_rate(rate)
        if self.rate > 0 and len(models) < 2:
            raise ValidationError(f"audits ask the top model about answers given below it, but "
                                  f"the engine has one model ({list(models)}); serve a ladder "
                                  f"or a small and a large model.", parameter="audit_rate",
                                  value=rate)
        self.models = tuple(models)
        self.top = self.models[-1]
        self.strategy = Vote(max_samples=1, wave=1, max_tokens=max_tokens, temperature=0.0,
                             role=role)
        """The audit plan: one greedy sample of the top model."""
        self._submit = submit
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self.max_pending = max_pending
        self.pending = 0
        self.offered = 0
        """Requests answered below the top model (the ones an audit may pick)."""
        self.dropped = 0
        self.inconclusive = 0
        self.counts: dict[str, list[int]] = {}
        """Per rung (deciding model): [audited, disagreed]."""
        self.spent = 0.0
        self.tokens: dict[str, int] = {}
        self.writer = None if bank is None else _open_bank(bank, self.models, cost)
        self.guard: Any = None
        """A `tts.guard.DriftGuard` told of every answer offered (and its prompt, for the
        novelty alarm) and every audit's verdict."""

    # ---- choosing and running ------------------------------------------------------------
    def rung(self, result: Result) -> str | None:
        """The deciding rung of an answered result (the dearest model that generated for
        it), or None when it was not answered."""
        if result.status != "answered" or result.answer is None:
            return None
        used = [m for m in self.models if result.tokens.get(m, 0) > 0]
        return used[-1] if used else None

    def offer(self, question: str | Problem, result: Result, *, planned: bool = True) -> bool:
        """Audit this answer with probability `rate` when it was given below the top model;
        True when an audit was started (it runs in the background). `planned`: the policy
        chose its plan (not a strategy the request forced), so the drift guard counts it."""
        rung = self.rung(result)
        guard = self.guard if planned else None
        text = question.question if isinstance(question, Problem) else question
        token = None if guard is None else guard.request(rung is not None and rung != self.top,
                                                         text)
        if rung is None or rung == self.top:
            return False
        with self._lock:
            self.offered += 1
            if self._random.random() >= self.rate:
                return False
            if self.pending >= self.max_pending:
                self.dropped += 1
                return False
            self.pending += 1
        pid = result.problem_id or problem_id(text)
        problem = Problem(text, id=pid) if result.problem_id else Problem(text)
        try:
            self._submit(problem, lambda got: self._done(text, pid, rung, result, got, token))
        except Exception as exc:  # the top backend cannot take it: the request is unharmed
            self._done(text, pid, rung, result, exc, token)
        return True

    def _done(self, question: str, pid: str, rung: str, deployed: Result, got: Any,
              token: Any = None) -> None:
        try:
            disagreed = self._count(question, pid, rung, deployed, got)
            if disagreed is not None and token is not None and self.guard is not None:
                self.guard.audited(token, disagreed)  # before `wait` returns: a move is in place
        finally:
            with self._idle:
                self.pending -= 1
                self._idle.notify_all()

    def _count(self, question: str, pid: str, rung: str, deployed: Result,
               got: Any) -> bool | None:
        """Count one finished audit; whether the top model disagreed (None: no verdict)."""
        disagreed = None
        with self._lock:
            if not isinstance(got, Result) or got.status == "insufficient_budget":
                self.dropped += 1
                return None
            self.spent += got.cost
            for model, count in got.tokens.items():
                self.tokens[model] = self.tokens.get(model, 0) + count
            if got.answer is None:
                self.inconclusive += 1
            else:
                counts = self.counts.setdefault(rung, [0, 0])
                disagreed = not equivalent(deployed.answer or "", got.answer)
                counts[0] += 1
                counts[1] += disagreed
            if self.writer is not None:
                self._write(question, pid, rung, deployed, got)
        return disagreed

    def _write(self, question: str, pid: str, rung: str, deployed: Result, top: Result) -> None:
        problem = Problem(question, id=pid)
        for model, mode, answer, tokens in (
                (self.top, "greedy", top.answer, top.tokens.get(self.top, 0)),
                (rung, "deployed", deployed.answer, deployed.tokens.get(rung, 0))):
            if (pid, model, mode) not in self.writer.done:
                self.writer.write(problem, Record(pid, model, mode, 0,
                                                  (Sample(answer, int(tokens)),)))

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until no audit is pending and the drift guard has judged every prompt it was
        given (novelty); False if `timeout` passed first (each waits up to it)."""
        with self._idle:
            done = self._idle.wait_for(lambda: self.pending == 0, timeout)
        return (self.guard is None or self.guard.wait(timeout)) and done

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    # ---- what it found -------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The audit statistics as plain data (JSON): rate, counts, the audit ledger, and the
        disagreement with its 95% interval, overall and per rung."""
        with self._lock:
            by_rung = {rung: _estimate(*c) for rung, c in self.counts.items()}
            audited = sum(c[0] for c in self.counts.values())
            disagreed = sum(c[1] for c in self.counts.values())
            return {"rate": self.rate, "top_model": self.top, "offered": self.offered,
                    "pending": self.pending, "dropped": self.dropped,
                    "inconclusive": self.inconclusive,
                    "disagreement": {"overall": _estimate(audited, disagreed),
                                     "by_rung": by_rung},
                    "ledger": {"spent": self.spent, "tokens": dict(self.tokens)},
                    "drift": None if self.guard is None else self.guard.snapshot()}


def background_auditor(engine: Any, rate: float, bank: str | Path | None) -> Auditor:
    """The Auditor of `Engine(audit_rate=)`: audits run one at a time in a thread of their
    own, through `engine.solve` (which waits for the engine's lock, so they never call a
    backend while a caller's request does)."""
    pool = ThreadPoolExecutor(1, thread_name_prefix="tts-audit")

    def submit(problem: Problem, done: Callable[[Any], None]) -> None:
        def run() -> None:
            try:
                got: Any = engine.solve(problem, AUDIT_BUDGET, strategy=auditor.strategy)
            except Exception as exc:  # a failing top model drops the audit, nothing else
                got = exc
            done(got)

        pool.submit(run)

    models = engine.models
    auditor = Auditor(rate, models=list(models.values()), cost=engine.cost,
                      role=list(models)[-1], submit=submit, seed=engine.seed, bank=bank)
    return auditor


def _estimate(audited: int, disagreed: int) -> dict[str, Any]:
    low, high = wilson(disagreed, audited)
    return {"audited": audited, "disagreed": disagreed,
            "rate": disagreed / audited if audited else None, "low": low, "high": high}


def _open_bank(path: str | Path, models: Sequence[str], cost: CostModel) -> BankWriter:
    """A BankWriter on an audit bank folder: new (absent or empty) or an audit bank."""
    root = Path(path)
    if root.exists() and not root.is_dir():
        raise BankError(f"audit bank {root} must be a folder, but a file is in the way.")
    if root.is_dir() and any(root.iterdir()):
        if not (root / META_FILE).exists():
            raise BankError(f"audit bank {root} is a folder holding other files but no "
                            f"{META_FILE}: not a bank; give an empty or new folder.")
        name = load_bank(root).meta.name
        if name != AUDIT_BANK_NAME:
            raise BankError(f"{root} is a bank named {name!r}, not an audit bank; give an empty "
                            f"or new folder (audits are appended to banks named "
                            f"{AUDIT_BANK_NAME!r}).")
    meta = BankMeta(name=AUDIT_BANK_NAME, roles={"small": models[0], "large": models[-1]},
                    cost=cost, tokenizer="the serving engine's backends",
                    source="tts audits: answers deployed below the top model, and the top "
                           "model's greedy answer to the same question",
                    ladder=tuple(models), modes=_modes(models))
    return BankWriter(root, meta, resume=True)


def _modes(models: Sequence[str]) -> Mapping[str, Mapping[str, str]]:
    deployed = {"deployed": "the answer deployed for an audited request (its tokens: what this "
                            "model spent on it)"}
    modes: dict[str, Mapping[str, str]] = {m: deployed for m in models[:-1]}
    modes[models[-1]] = {"greedy": "the top model's audit answer (one greedy sample)"}
    return modes
