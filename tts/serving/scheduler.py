"""Continuous batching: one engine loop for requests that arrive at any time.

`Engine.solve_many` drives a fixed set of prompts in lockstep rounds. A server cannot wait for
a round: requests arrive one by one. The `Scheduler` keeps every in-flight request's strategy
generator (planned with `Engine.plan`, charged with `Job.commit`, finished with
`Engine.result`: the same strategies, ledgers, policy and Results as `solve_many`) and,
whenever a backend is idle and some
requests have steps pending for it, sends all of those steps to it as one `generate` batch. A
request that arrives while a batch runs joins the next batch of that backend; it never waits
for a lockstep round of the others. Each backend has its own worker thread (one batch in flight
per backend), so the small model keeps batching while the large one answers escalations, and
generation never blocks the caller's thread or event loop.

A batch that fails (the backend raised, or broke the contract) fails only the requests in it,
each with a `ServeError` carrying the reason and the tokens already spent; the loop keeps
running, and the next batch tries the backend again. "Already spent" is complete: earlier
steps, the request's calls of the same step that went to another backend (the request waits
for them before it fails), and the samples a failed batch did produce when the backend's error
carries them (`error.partial`: per request, the completions that came back — the OpenAI
backend attaches the replies that arrived before a replica failed), and what attempts that
timed out may have generated (`error.lost`, billed by hosted APIs; retried attempts are
charged before the retry, through `tts.backends.contract.ledger_pay`). A backend refusing one
request of a batch it cannot serve (a replay bank holding too few samples: BankError) fails
that request alone (`ServeError.refused`); the others are served.

A request whose Future is cancelled (its client went away, or it timed out) is dropped at once:
its steps still waiting for a backend are withdrawn, no further step is sent, and a timed-out
attempt of it is not retried.

Example:
    >>> sched = Scheduler(tts.replay_engine())                  # doctest: +SKIP
    >>> result = sched.submit(question, 50_000).result()
    >>> sched.close()
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from tts.backends.contract import check_completions, generate_checked, ledger_pay
from tts.engine import Engine, Job
from tts.errors import BankError, TTSError
from tts.strategies import Strategy
from tts.strategies.base import Call
from tts.types import Completion, Problem, Result, Role

__all__ = ["Scheduler", "ServeError", "Served"]


class ServeError(TTSError):
    """A request the backends could not serve; says why and what was already spent.
    `refused`: a backend refused the request itself (e.g. more samples than a replay bank
    holds) rather than failing."""

    def __init__(self, message: str, *, status: int = 503, spent: float = 0.0,
                 tokens: dict[str, int] | None = None, refused: bool = False):
        super().__init__(message)
        self.status = status
        self.spent = spent
        self.tokens = dict(tokens or {})
        self.refused = refused


@dataclass
class Served:
    """A finished request: the Engine's Result plus what the server reports beyond it."""

    result: Result
    generated: int
    """Generated tokens over all models (usage.completion_tokens)."""
    prompt_tokens: int
    """Prompt tokens the backends processed, over all calls (usage.prompt_tokens)."""
    text: str | None
    """Text of the first sample that gave the winning answer, when the backend returns text."""
    batches: int
    """Generate batches this request took part in."""


@dataclass(eq=False)
class _Flight:
    job: Job
    gen: Any
    future: Future
    start: float
    calls: list[Call] = field(default_factory=list)
    replies: list[list[Completion] | None] = field(default_factory=list)
    outstanding: int = 0
    """Calls of the current step sent or pending, not yet back."""
    generated: int = 0
    prompt_tokens: int = 0
    batches: int = 0
    texts: dict[str | None, str] = field(default_factory=dict)
    error: tuple[str, int, bool] | None = None
    """(reason, status, refused) once a call of the current step failed; the request fails
    when its other calls are back (and charged)."""
    error_note: str = ""
    done: bool = False


class Scheduler:
    """Drives requests of one Engine with continuous batching per backend.

    Args:
        engine: the Engine whose backends, policy, cost model, prompt handling and Result
            building are used.
        max_batch: most steps sent to a backend in one `generate` call.
        on_batch: called as `on_batch(model, size, seconds)` after every batch (metrics).
    """

    def __init__(self, engine: Engine, *, max_batch: int = 256,
                 on_batch: Callable[[str, int, float], None] | None = None):
        self.engine = engine
        self.max_batch = max_batch
        self.on_batch = on_batch
        self._events: queue.Queue = queue.Queue()
        self._pending: dict[Role, deque[tuple[_Flight, int]]] = {
            role: deque() for role in engine.backends}
        self._busy: dict[Role, bool] = {role: False for role in engine.backends}
        self._workers = {role: ThreadPoolExecutor(1, thread_name_prefix=f"tts-{role}")
                         for role in engine.backends}
        self.batches: dict[str, list[int]] = {b.model: [] for b in engine.backends.values()}
        """Size of every batch sent, per model (for tests and metrics)."""
        self._flights: set[_Flight] = set()
        self._ledgers = threading.Lock()
        """Guards the flights' ledgers and `done`: backends pay lost attempts from their
        own threads."""
        self.cancelled = 0
        """Requests dropped because their Future was cancelled (client gone, timeout)."""
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="tts-scheduler", daemon=True)
        self._thread.start()

    @property
    def in_flight(self) -> int:
        """Requests started and not yet finished."""
        return len(self._flights)

    # ---- public ------------------------------------------------------------------------
    def submit(self, prompt: str | Problem, budget: float, *,
               strategy: Strategy | str | None = None, seed: int | None = None) -> Future:
        """Start answering `prompt` under `budget`; the Future gives a `Served` or raises
        ServeError (backend failure) — bad input raises here (`Engine.plan`'s errors), before
        anything runs."""
        if self._closed:
            raise ServeError("the scheduler is shut down.", status=503)
        job = self.engine.plan(prompt, budget, strategy=strategy, seed=seed)
        future: Future = Future()  # cancel() works until it is done: the request is dropped
        future.ledger = job.ctx.ledger  # type: ignore[attr-defined]  # spent so far, for errors
        flight = _Flight(job, job.steps(), future, time.perf_counter())
        future.add_done_callback(
            lambda f: f.cancelled() and self._events.put(("cancel", flight)))
        self._events.put(("submit", flight))
        return future

    def close(self, timeout: float = 10.0) -> None:
        """Stop the loop (in-flight requests fail) and the backend workers."""
        if self._closed:
            return
        self._closed = True
        self._events.put(("stop",))
        self._thread.join(timeout)
        for worker in self._workers.values():
            worker.shutdown(wait=False, cancel_futures=True)

    # ---- the loop (only this thread touches the flights) --------------------------------
    def _loop(self) -> None:
        while True:
            events = [self._events.get()]
            while True:
                try:
                    events.append(self._events.get_nowait())
                except queue.Empty:
                    break
            for event in events:
                if event[0] == "stop":
                    self._fail_all("the server is shutting down.")
                    return
                try:
                    if event[0] == "submit":
                        self._flights.add(event[1])
                        self._advance(event[1], None)
                    elif event[0] == "done":
                        self._finish_batch(*event[1:])
                    elif event[0] == "cancel" and not event[1].done:
                        self.cancelled += 1
                        self._withdraw(event[1])
                        self._drop(event[1])
                except Exception as exc:  # a bug must not stop the loop
                    for flight in self._flights_of(event):
                        self._fail(flight, f"internal error: {type(exc).__name__}: {exc}", 500)
            self._dispatch()

    @staticmethod
    def _flights_of(event) -> list[_Flight]:
        if event[0] in ("submit", "cancel"):
            return [event[1]]
        if event[0] == "done":
            return [f for f, _ in event[2]]
        return []

    def _advance(self, flight: _Flight, reply: list | None) -> None:
        if flight.future.cancelled():  # the client went away
            self._drop(flight)
            return
        try:
            calls = flight.gen.send(reply)
        except StopIteration as stop:
            job = flight.job
            job.seconds = time.perf_counter() - flight.start
            result = self.engine.result(job, stop.value)
            text = flight.texts.get(result.answer)
            self._drop(flight)
            try:
                flight.future.set_result(Served(result, flight.generated, flight.prompt_tokens,
                                                text, flight.batches))
            except Exception:  # cancelled meanwhile
                pass
            return
        except TTSError as exc:
            self._fail(flight, str(exc), 503)
            return
        if not calls:
            self._fail(flight, "a strategy yielded an empty step.", 500)
            return
        flight.calls = list(calls)
        flight.replies = [None] * len(calls)
        flight.outstanding = len(calls)
        for j, call in enumerate(calls):
            self._pending[call.role].append((flight, j))

    def _dispatch(self) -> None:
        for role, pending in self._pending.items():
            if self._busy[role]:
                continue
            batch: list[tuple[_Flight, int]] = []
            while pending and len(batch) < self.max_batch:
                flight, j = pending.popleft()
                if not flight.done:
                    batch.append((flight, j))
            if not batch:
                continue
            self._busy[role] = True
            requests = [f.calls[j].request for f, j in batch]
            backend = self.engine.backends[role]
            pay = ledger_pay(backend.model, lambda i, batch=batch: None if batch[i][0].done
                             else batch[i][0].job.ctx, self._ledgers)
            future = self._workers[role].submit(self._generate, backend, requests, pay)
            future.add_done_callback(
                lambda fut, role=role, batch=batch: self._events.put(("done", role, batch, fut)))

    @staticmethod
    def _generate(backend, requests, pay) -> tuple[list, float]:
        """The batch's samples per request and its seconds. When a backend refuses the batch
        because of one request it cannot serve (BankError: replay is instant, so asking again
        costs nothing), each request is asked alone; a refused one's entry is its error."""
        start = time.perf_counter()
        try:
            results: list = generate_checked(backend, requests, pay)
        except BankError:
            if len(requests) == 1:
                raise
            results = []
            for request in requests:
                try:
                    results.append(generate_checked(backend, [request], pay)[0])
                except BankError as exc:
                    results.append(exc)
        return results, time.perf_counter() - start

    def _finish_batch(self, role: Role, batch: list[tuple[_Flight, int]], fut: Future) -> None:
        self._busy[role] = False
        model = self.engine.backends[role].model
        failure: tuple[str, int, bool] | None = None
        lost: list[list[int]] = [[] for _ in batch]
        try:
            results, seconds = fut.result()
        except BaseException as exc:  # the backend failed: fail this batch's requests only
            failure = self._reason(model, exc)
            results = self._partial(exc, batch, model)
            lost = self._lost(exc, batch)
        else:
            self.batches[model].append(len(batch))
            if self.on_batch is not None:
                try:
                    self.on_batch(model, len(batch), seconds)
                except Exception:  # metrics must never break serving
                    pass
        for (flight, j), completions, missing in zip(batch, results, lost):
            if flight.done:
                continue
            if isinstance(completions, BaseException):  # refused alone (see _generate)
                self._call_failed(flight, *self._reason(model, completions))
                continue
            complete = completions is not None and \
                len(completions) == flight.calls[j].request.n
            if completions or missing:  # generated (maybe billed), so charged
                if not self._charge(flight, j, completions or [], model, missing):
                    self._call_failed(flight, f"{model}: {flight.error_note}", 503)
                    continue
            if not complete:
                self._call_failed(flight, *(failure or (f"{model} returned too few samples.",
                                                        503, False)))
                continue
            flight.batches += 1
            flight.replies[j] = completions
            flight.outstanding -= 1
            if flight.error is not None:
                if flight.outstanding == 0:
                    self._fail(flight, *flight.error)
            elif flight.outstanding == 0:
                self._advance(flight, flight.replies)

    @staticmethod
    def _reason(model: str, exc: BaseException) -> tuple[str, int, bool]:
        """(reason, status, refused) of a failed call."""
        text = str(exc) if isinstance(exc, TTSError) else \
            f"internal error ({type(exc).__name__}): {exc}"
        return (f"{model} failed: {text}", 504 if "timeout" in text.lower() else 503,
                isinstance(exc, BankError))

    @staticmethod
    def _lost(exc: BaseException, batch: list[tuple[_Flight, int]]) -> list[list[int]]:
        """Per request, the max_tokens of each sample whose last attempt timed out
        (`exc.lost`, as the OpenAI backend attaches): billed by the server, so charged."""
        lost = getattr(exc, "lost", None)
        if not isinstance(lost, list) or len(lost) != len(batch):
            return [[] for _ in batch]
        out = []
        for (flight, j), got in zip(batch, lost):
            cap = flight.calls[j].request.max_tokens
            out.append([t for t in got if type(t) is int and 0 < t <= cap]
                       if isinstance(got, list) else [])
        return out

    @staticmethod
    def _partial(exc: BaseException, batch: list[tuple[_Flight, int]],
                 model: str) -> list[list[Completion] | None]:
        """What a failed batch did produce, per request, when the error carries it
        (`exc.partial`, as the OpenAI backend attaches): a request with all its samples is
        served as if the batch had succeeded; the others fail, their samples charged."""
        partial = getattr(exc, "partial", None)
        if not isinstance(partial, list) or len(partial) != len(batch):
            return [None] * len(batch)
        out: list[list[Completion] | None] = []
        for (flight, j), got in zip(batch, partial):
            request = flight.calls[j].request
            if not isinstance(got, list) or not got:
                out.append(None)
                continue
            try:
                got = check_completions(model, request, got) if len(got) == request.n else \
                    [c for c in got if isinstance(c, Completion)][:request.n]
            except TTSError:
                got = []
            out.append(got or None)
        return out

    def _charge(self, flight: _Flight, j: int, completions: list[Completion],
                model: str, lost: list[int] = ()) -> bool:  # type: ignore[assignment]
        """Commit a call's completions, and the samples whose attempts timed out (`lost`, at
        their max_tokens), to the request's ledger; False if the ledger refused them (the
        reason in `flight.error_note`)."""
        call = flight.calls[j]
        try:
            with self._ledgers:
                if lost:
                    lost = list(lost)[:call.request.n - len(completions)]
                    call_prompt = completions[0].prompt_tokens if completions else None
                    flight.job.ctx.ledger.commit(
                        call.reservation, [c.tokens for c in completions] + lost, call_prompt)
                    flight.job.ctx.trace.append(
                        f"{model}: {len(lost)} sample(s) timed out; charged their max_tokens "
                        f"({sum(lost)} tokens, billed by the server)")
                else:
                    flight.job.commit(call, completions)
        except TTSError as exc:
            flight.error_note = str(exc)
            return False
        if not completions:
            return True
        flight.generated += sum(c.tokens for c in completions)
        flight.prompt_tokens += completions[0].prompt_tokens
        for c in completions:
            if c.text and c.answer not in flight.texts:
                flight.texts[c.answer] = c.text
        return True

    def _call_failed(self, flight: _Flight, reason: str, status: int,
                     refused: bool = False) -> None:
        """A call of the flight's current step failed: drop its calls still waiting for a
        backend, and fail it once the ones already sent are back (and charged)."""
        flight.outstanding -= 1
        if flight.error is None:
            flight.error = (reason, status, refused)
            flight.outstanding -= self._withdraw(flight)
        if flight.outstanding <= 0:
            self._fail(flight, *flight.error)

    def _withdraw(self, flight: _Flight) -> int:
        """Remove the flight's calls still waiting for a backend; how many there were."""
        withdrawn = 0
        for pending in self._pending.values():
            if any(f is flight for f, _ in pending):
                kept = [(f, j) for f, j in pending if f is not flight]
                withdrawn += len(pending) - len(kept)
                pending.clear()
                pending.extend(kept)
        return withdrawn

    def _fail(self, flight: _Flight, reason: str, status: int, refused: bool = False) -> None:
        if flight.done:
            return
        ledger = flight.job.ctx.ledger
        self._drop(flight)
        try:
            flight.future.set_exception(ServeError(
                f"{reason} (tokens already spent on this request: {ledger.spent:g} units "
                f"{dict(ledger.tokens)})", status=status, spent=ledger.spent,
                tokens=dict(ledger.tokens), refused=refused))
        except Exception:  # cancelled meanwhile
            pass

    def _drop(self, flight: _Flight) -> None:
        if flight.done:
            return
        with self._ledgers:
            flight.done = True
            self._flights.discard(flight)
            try:
                flight.gen.close()
            except Exception:
                pass

    def _fail_all(self, reason: str) -> None:
        for flight in list(self._flights):
            self._fail(flight, reason, 503)


def run_one(scheduler: Scheduler, prompt: str, budget: float, **kw) -> Served:
    """Submit and wait (convenience for scripts)."""
    return scheduler.submit(prompt, budget, **kw).result()
