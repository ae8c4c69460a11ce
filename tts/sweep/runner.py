"""Running a budget sweep (`run_sweep`): every plan, every budget, every seed, appended to a
checkpoint CSV one budget at a time so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

import numpy as np

from tts.cli_args import check_budgets, check_writable
from tts.errors import BankError, ValidationError
from tts.measures import bootstrap_pairs, gap_closed
from tts.sweep.evaluator import Cell, Evaluator, oracle_cell, summarise
from tts.sweep.plans import Entry, plan_entries, resolve_policy
from tts.sweep.result import SweepResult
from tts.sweep.rows import SweepRow, csv_columns, fmt_budget, rounded, row_from_csv, write_csv

if TYPE_CHECKING:
    from tts.bank import SampleBank
    from tts.policy import Policy
    from tts.strategies import Strategy

__all__ = ["run_sweep", "DEFAULT_BUDGETS"]

DEFAULT_BUDGETS: tuple[float, ...] = tuple(float(2 ** k) for k in range(9, 20))
"""512 .. 524288 units, doubling: from one small-model sample reservation (512 tokens) to
four large-model calls on the MoT bank (one GPT-4 call reserves 512 x 240 = 122,880)."""
FORMAT = "tts-sweep/1"


def _check_gold(bank: SampleBank) -> None:
    missing = [pid for pid, p in bank.problems.items() if p.gold is None]
    if missing:
        raise BankError(f"bank {bank.meta.name!r} has no gold answer for {len(missing)} of "
                        f"{len(bank.problems)} problems (e.g. {missing[0]!r}); a sweep scores "
                        f"answers against gold, so it needs them all.")


def run_sweep(bank: SampleBank | str | Path | None, budgets: Iterable[float], *,
              strategies: Sequence[str] | Mapping[str, Strategy] | None = None,
              policy: Policy | str | Path | None = None, seeds: int | Sequence[int] = 5,
              bootstrap: int = 200, heldout_ids: Iterable[str] | None = None,
              progress: bool = True, checkpoint: str | Path | None = None, resume: bool = True,
              bootstrap_seed: int = 0, method: str = "auto",
              ladder: Sequence[str] | None = None,
              count_prompt: bool | None = None) -> SweepResult:
    """Sweep `budgets` over a bank: every plan, every budget, every seed.

    Args:
        bank: a SampleBank, a bank folder, or None for the bundled MoT GSM8K bank.
        budgets: strictly increasing budgets (small-model token units) per question.
        strategies: plan names to run ("vote@N", "vote", "chain", "escalate", "escalate@N",
            "cascade", "adaptive", "policy", "oracle"; default: vote@1, 2, 4, ... up to what
            the bank holds, vote, chain, escalate, cascade, policy, oracle), or a mapping name ->
            Strategy (a custom fixed plan) or None (the built-in plan of that name). Plans
            the bank cannot run (chain without chain samples) are reported as unavailable.
        policy: a Policy, a tuned policy JSON file, or None for `DefaultPolicy`. A policy
            naming its training split (`train_ids`) is scored only on the other questions.
        seeds: number of seeded sample orders (0..n-1), or the seeds themselves.
        bootstrap: resamples of (question, seed) pairs for the 95% intervals (0: none).
        heldout_ids: evaluate only these questions (say, the split a policy never saw).
        progress: show a rich progress bar on stderr.
        checkpoint: CSV that rows are appended to, one budget at a time; with `resume`, a
            checkpoint from the same settings is read back and its budgets are not re-run.
        bootstrap_seed: seed of the resampling.
        method: "auto" (vectorised `tts.evaluate` when available), "vectorised" or
            "solve_many" (runs `Engine.solve_many` per seed: the reference, slower). Both
            give identical numbers.
        ladder: the bank's models to run, cheapest first (default: the policy's ladder when it
            names one, else the bank's small and large models); fixed plans use its first
            and last.
        count_prompt: charge prompt tokens (default: as the policy was tuned, its
            `notes.count_prompt`, else no).
    """
    t0 = time.perf_counter()
    grid = check_budgets(budgets)
    seed_list = _check_seeds(seeds)
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, int) or bootstrap < 0:
        raise ValidationError(f"`bootstrap` must be an integer >= 0, got {bootstrap!r}.",
                              parameter="bootstrap", value=bootstrap)
    full = _load(bank)
    policy_obj, train_ids, policy_desc = resolve_policy(policy)
    notes = getattr(policy_obj, "notes", None) or {}
    if ladder is None:
        ladder = getattr(policy_obj, "ladder", None)
    if count_prompt is None:
        count_prompt = bool(notes.get("count_prompt", False))
    heldout = False
    ids = full.problem_ids
    if heldout_ids is not None:
        if isinstance(heldout_ids, (str, bytes)):
            raise ValidationError("`heldout_ids` must be a list of question ids, not a string.",
                                  parameter="heldout_ids", value=heldout_ids)
        wanted = list(dict.fromkeys(str(i) for i in heldout_ids))
        unknown = [i for i in wanted if i not in full.problems]
        if unknown:
            raise BankError(f"{len(unknown)} held-out id(s) are not in bank "
                            f"{full.meta.name!r}, e.g. {unknown[0]!r}.")
        if train_ids is not None and set(wanted) & set(train_ids):
            overlap = sorted(set(wanted) & set(train_ids))
            raise ValidationError(f"{len(overlap)} held-out question(s) are in the policy's "
                                  f"training split, e.g. {overlap[0]!r}.",
                                  parameter="heldout_ids")
        ids, heldout = wanted, True
    elif train_ids is not None:
        seen = set(train_ids)
        ids, heldout = [i for i in full.problem_ids if i not in seen], True
    if not ids:
        raise ValidationError("no questions left to evaluate: the policy was tuned on every "
                              "question of this bank (its notes.train_ids). For held-out "
                              "numbers sweep the crossfit_policy.json that `tts tune` wrote "
                              "beside it (each question decided by a fold policy that never "
                              "saw it), or a bank of other questions.", parameter="heldout_ids")
    sub = full.subset(ids) if heldout else full
    _check_gold(sub)
    entries = plan_entries(sub, strategies, policy_obj, ladder)
    if ladder is not None:
        missing = [m for m in ladder if m not in sub.models]
        if missing:
            raise BankError(f"the ladder {list(ladder)} names model(s) {missing} that bank "
                            f"{sub.meta.name!r} does not hold (it has {sorted(sub.models)}).")
        models = tuple(ladder)
    else:
        models = tuple(m for m in (sub.meta.roles.get("small"), sub.meta.roles.get("large"))
                       if m is not None and m in sub.models)
    config = {"format": FORMAT, "bank": sub.meta.name, "bank_sha1": _bank_digest(sub),
              "questions": ids if heldout else len(ids), "seeds": list(seed_list),
              "bootstrap": bootstrap, "bootstrap_seed": bootstrap_seed,
              "plans": [[e.name, e.kind, e.describe()] for e in entries], "policy": policy_desc,
              **({"ladder": list(ladder)} if ladder is not None else {}),
              **({"count_prompt": True} if count_prompt else {})}
    key = _sha1(json.dumps(config, sort_keys=True, default=str).encode())[:16]
    result = SweepResult(rows=[], budgets=grid, names=tuple(e.name for e in entries),
                         models=models, bank_name=sub.meta.name, n_questions=len(ids),
                         total_questions=len(full.problems), heldout=heldout, seeds=seed_list,
                         bootstrap=bootstrap, config_key=key,
                         unavailable={e.name: e.unavailable for e in entries if e.unavailable},
                         unit=f"1 {sub.meta.roles.get('small')} output token")
    done: dict[float, list[SweepRow]] = {}
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if ckpt is not None:
        check_writable(ckpt.parent, [ckpt.name], what="checkpoint folder")
        if resume and ckpt.exists():
            done = _read_checkpoint(ckpt, key, result.names, models, result.notes)
        elif ckpt.exists():
            ckpt.unlink()
    boot = bootstrap_pairs(len(seed_list), len(ids), bootstrap, bootstrap_seed)
    evaluator = Evaluator(sub, seed_list, models, method, ladder=ladder,
                          count_prompt=count_prompt)
    todo = [b for b in grid if b not in done]
    runnable = [e for e in entries if e.kind != "oracle" and not e.unavailable]
    with _progress(progress, len(todo) * len(runnable)) as advance:
        for budget in grid:
            if budget in done:
                result.rows.extend(done[budget])
                continue
            rows = _sweep_budget(budget, entries, evaluator, boot, models, advance)
            result.rows.extend(rows)
            if ckpt is not None:
                write_csv(ckpt, rows, models, result.csv_context(), mode="a")
    result.resumed_budgets = tuple(b for b in grid if b in done)
    result.elapsed = time.perf_counter() - t0
    return result


def _sweep_budget(budget: float, entries: Sequence[Entry], evaluator: Evaluator,
                  boot: tuple[np.ndarray, np.ndarray], models: Sequence[str],
                  advance) -> list[SweepRow]:
    cells: dict[str, Cell] = {}
    rows: list[SweepRow] = []
    for e in entries:
        if e.kind == "oracle" or e.unavailable:
            continue
        advance(f"budget {fmt_budget(budget)}: {e.name}")
        try:
            cells[e.name] = evaluator.run(e, budget)
        except BankError as exc:
            raise BankError(f"{e.name} at budget {fmt_budget(budget)}: {exc}") from None
    for e in entries:
        if e.unavailable:
            rows.append(SweepRow(budget=budget, strategy=e.name, kind=e.kind, available=False,
                                 note=e.unavailable))
        elif e.kind == "oracle":
            rows.append(summarise(budget, e, oracle_cell(list(cells.values())), boot, models))
        else:
            rows.append(summarise(budget, e, cells[e.name], boot, models))
    fixed = [r.accuracy for r in rows if r.kind == "fixed" and r.available]
    oracle = next((r for r in rows if r.kind == "oracle"), None)
    if fixed and oracle is not None:
        best = max(fixed)
        rows = [replace(r, gap_closed=float(gap_closed(r.accuracy, best, oracle.accuracy)))
                if r.kind == "policy" and r.available else r for r in rows]
    return [rounded(r) for r in rows]


class _progress:
    """A rich progress bar on stderr (or nothing); yields an `advance(label)` callable."""

    def __init__(self, enabled: bool, total: int):
        self.enabled, self.total = enabled and total > 0, total
        self._bar = None

    def __enter__(self):
        if not self.enabled:
            return lambda label: None
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn)

        self._bar = Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), TextColumn("{task.description}"),
                             console=Console(stderr=True), transient=True)
        self._bar.start()
        task = self._bar.add_task("", total=self.total)
        first = [True]

        def advance(label: str) -> None:
            if not first[0]:
                self._bar.advance(task)
            first[0] = False
            self._bar.update(task, description=label)

        return advance

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


def _check_seeds(seeds: int | Sequence[int]) -> tuple[int, ...]:
    if isinstance(seeds, bool):
        raise ValidationError(f"`seeds` must be a count >= 1 or a list of ints, got {seeds!r}.",
                              parameter="seeds", value=seeds)
    if isinstance(seeds, int):
        if seeds < 1:
            raise ValidationError(f"`seeds` must be >= 1, got {seeds}.", parameter="seeds",
                                  value=seeds)
        return tuple(range(seeds))
    out = tuple(seeds)
    if not out or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0
                      for s in out) or len(set(out)) != len(out):
        raise ValidationError(f"`seeds` must be distinct integers >= 0, got {seeds!r}.",
                              parameter="seeds", value=seeds)
    return tuple(int(s) for s in out)


def _load(bank: SampleBank | str | Path | None) -> SampleBank:
    from tts.bank import SampleBank, load_bank

    if isinstance(bank, SampleBank):
        return bank
    if bank is None:
        from tts import BUNDLED_BANK

        return load_bank(BUNDLED_BANK)
    if isinstance(bank, (str, Path)):
        return load_bank(bank)
    raise ValidationError(f"`bank` must be a SampleBank or a bank folder, got "
                          f"{type(bank).__name__}.", parameter="bank")


def _bank_digest(bank: SampleBank) -> str:
    h = hashlib.sha1()
    for key in sorted(bank.records):
        rec = bank.records[key]
        gold = bank.problems[key[0]].gold
        h.update(json.dumps([key, gold, rec.prompt_tokens,
                             [[s.answer, s.tokens] for s in rec.samples]]).encode())
    return h.hexdigest()


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


# ---- checkpoint -----------------------------------------------------------------------------
def _read_checkpoint(path: Path, key: str, names: Sequence[str], models: Sequence[str],
                     notes: list[str] | None = None) -> dict[float, list[SweepRow]]:
    """Completed budgets of a checkpoint written with the same settings.

    Rows are appended one line at a time, so a writer killed mid-row leaves a last line without
    its newline, cut anywhere (even inside the config field or a UTF-8 character). That line is
    dropped (and cut off the file, so new rows start on a line of their own), with a note in
    `notes`; its budget is simply run again.
    """
    import io

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValidationError(f"cannot read sweep checkpoint {path} ({exc}); delete it or run "
                              f"without resuming.", parameter="checkpoint") from None
    complete = data[:data.rfind(b"\n") + 1]  # b"" when not even the header is whole
    try:
        reader = csv.DictReader(io.StringIO(complete.decode("utf-8"), newline=""))
        header = reader.fieldnames or []
        lines = list(reader)
    except (csv.Error, UnicodeDecodeError) as exc:
        raise ValidationError(f"cannot read sweep checkpoint {path} ({exc}); delete it or run "
                              f"without resuming.", parameter="checkpoint") from None
    if not complete:  # only a torn header: nothing was finished
        header = csv_columns(models)
    if header != csv_columns(models) or any(d.get("config") != key for d in lines):
        raise ValidationError(
            f"{path} holds a sweep with other settings (bank, questions, plans, seeds or "
            f"bootstrap differ); run without resuming (--fresh) to overwrite it, or write to "
            f"another folder.", parameter="checkpoint", value=str(path))
    if len(complete) < len(data):
        with path.open("r+b") as fh:
            fh.truncate(len(complete))
        if notes is not None:
            notes.append(f"dropped an incomplete last line of {path} ({len(data) - len(complete)}"
                         f" bytes, left by an interrupted write); its budget is run again.")
    by_budget: dict[float, dict[str, SweepRow]] = {}
    for d in lines:
        try:
            row = row_from_csv(d, models)
        except (KeyError, TypeError, ValueError):
            continue  # a line cut short by an interruption: that budget is re-run
        by_budget.setdefault(row.budget, {})[row.strategy] = row
    return {b: [rows[n] for n in names] for b, rows in by_budget.items()
            if all(n in rows for n in names)}

