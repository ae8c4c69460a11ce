"""The `tts` command: its entry point (`main`), `tts solve` and `tts demo` (printing with
`tts.console`, whose `safe` it re-exports). The other commands are mounted from
modules beside the code they drive (`EXTRA_COMMANDS`: `tts.bank_cli`, `tts.sweep`,
`tts.tuning.cli`, `tts.models`, `tts.serving.cli`); their shared flags are in `tts.cli_args`.

Errors that tts raises on purpose are printed as one line (`error: ...`) with exit code 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import threading
from typing import Callable, Sequence

from rich import box
from rich.console import Console
from rich.table import Table

from tts.cli_args import add_bank, add_count_prompt, add_policy, add_seed
from tts.console import console, err_console, safe
from tts.errors import TTSError, ValidationError

# Subcommand builders contributed by other modules: each takes the subparsers object.
EXTRA_COMMANDS: list[str] = ["tts.bank_cli", "tts.sweep", "tts.tuning.cli", "tts.models",
                             "tts.serving.cli"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 0
    previous = _interrupt_on_sigterm()
    try:
        return int(args.run(args) or 0)
    except TTSError as exc:
        err_console.print(f"[bold red]error:[/] {safe(exc)}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted; work done so far is saved.[/]")
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _interrupt_on_sigterm():
    """Make `kill` (SIGTERM) end a run as Ctrl-C does: `finally` blocks run, so work done is
    kept and vLLM engine processes are shut down instead of being left orphaned. Returns the
    handler to restore (None off the main thread, where signals cannot be set)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tts", description="Allocate inference-time compute: small-model votes, long chains "
                                "or escalation to a large model, under a hard token budget.")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_solve(sub)
    _add_demo(sub)
    for module in EXTRA_COMMANDS:
        register = _optional_register(module)
        if register is not None:
            register(sub)
    return parser


def _optional_register(module: str) -> Callable | None:
    import importlib

    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            return None
        raise
    return getattr(mod, "add_cli", None)


# ---- solve ---------------------------------------------------------------------------------
def _add_solve(sub) -> None:
    p = sub.add_parser("solve", help="answer one question under a budget",
                       description="Answer QUESTION without spending more than --budget "
                                   "(small-model token units).")
    p.add_argument("question", help="the question text")
    p.add_argument("--budget", type=float, required=True, help="hard limit in budget units")
    _add_engine_args(p)
    p.add_argument("--json", action="store_true", help="print the Result as JSON")
    p.set_defaults(run=_run_solve)


def _add_engine_args(p: argparse.ArgumentParser) -> None:
    add_bank(p)
    p.add_argument("--strategy", default=None,
                   help="force a strategy: vote, escalate, cascade or chain (default: policy)")
    p.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                   help="strategy option, e.g. -o max_samples=8 (repeatable)")
    add_policy(p)
    add_seed(p)
    add_count_prompt(p)
    p.add_argument("--live", action="store_true",
                   help="generate with vLLM instead of replaying a bank (models from "
                        "`tts models pull`)")
    p.add_argument("--small", default="small",
                   help="live small model: tiny, small, large or a HF model folder "
                        "(default small = Qwen2.5-Coder-0.5B-Instruct)")
    p.add_argument("--large", default="large",
                   help="live large model, or 'none' (default large = Qwen2.5-Coder-1.5B-"
                        "Instruct; loaded only when a plan escalates)")
    p.add_argument("--verbose", "-v", action="store_true",
                   help="show vLLM's own logs (by default they go to a log file, path printed)")


def _engine_from_args(args):
    import tts

    policy = None
    if getattr(args, "policy", None) is not None:
        from tts.policy import load_policy

        policy = load_policy(args.policy)
    if args.live:
        return _live_engine(args, policy)
    return tts.replay_engine(args.bank, seed=args.seed, count_prompt=args.count_prompt,
                             policy=policy)


def _live_engine(args, policy):
    """An Engine over in-process vLLM engines (prices: tts.budgets.default_cost), quiet unless
    --verbose, with progress for engine loads and generation."""
    import os

    from tts.backends.vllm import VLLMBackend, log_file
    from tts.engine import Engine

    if args.bank is not None:
        raise ValidationError("--bank replays logged samples; it cannot be combined with --live.",
                              parameter="bank")
    verbose = bool(getattr(args, "verbose", False))
    if verbose:
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "INFO")
    else:
        console.print(f"vLLM logs: {safe(log_file())} (--verbose shows them)", soft_wrap=True,
                      highlight=False)
    show = LiveProgress()
    small = VLLMBackend(args.small, verbose=verbose, progress=show)
    large = None if args.large == "none" else VLLMBackend(args.large, verbose=verbose,
                                                           progress=show)
    return Engine(small, large, seed=args.seed, count_prompt=args.count_prompt, policy=policy)


class LiveProgress:
    """Shows engine loads and generation (samples done, output tokens/s) while vLLM's own
    output goes to its log file: a rich spinner line on a terminal (drawn on a copy of the
    terminal's file descriptor, which stays visible while fd 1 is redirected), else one plain
    line per finished load or generate call."""

    def __init__(self) -> None:
        import os
        import time

        self._time = time.perf_counter
        self.tty = console.is_terminal
        self.progress = None
        self.task = None
        self.started = 0.0
        if self.tty:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            out = open(os.dup(sys.stdout.fileno()), "w", buffering=1, closefd=True)
            self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                                     TimeElapsedColumn(), transient=True,
                                     console=Console(file=out, emoji=False, highlight=False))

    def __call__(self, event: dict) -> None:
        what = self._describe(event)
        finished = event.get("state") == "done" or (
            event["event"] == "generate" and event["total"] and event["done"] >= event["total"])
        if event.get("state") == "start" or (event["event"] == "generate" and event["done"] == 0):
            self.started = self._time()
        if self.progress is not None:
            if self.task is None:
                self.progress.start()
                self.task = self.progress.add_task(what)
            self.progress.update(self.task, description=what)
            if finished:
                self.progress.console.print(f"[dim]{what} in {self._time() - self.started:.0f} s"
                                            f"[/]", soft_wrap=True)
        elif finished:
            print(f"{what} in {self._time() - self.started:.0f} s", flush=True)

    def close(self) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.stop()
            self.task = None

    @staticmethod
    def _describe(event: dict) -> str:
        model = safe(event["model"])
        if event["event"] == "load":
            return f"{'loaded' if event['state'] == 'done' else 'loading'} {model} (vLLM)"
        speed = f", {event['tokens_per_s']:.0f} tokens/s" if event["tokens_per_s"] else ""
        return f"{model}: {event['done']}/{event['total']} samples{speed}"


def _close_progress(engine) -> None:
    for backend in getattr(engine, "backends", {}).values():
        close = getattr(getattr(backend, "progress", None), "close", None)
        if callable(close):
            close()


def _strategy_from_args(args):
    options = parse_options(args.option)
    if options and args.strategy is None:
        raise ValidationError("--option needs --strategy.", parameter="option")
    return args.strategy, options


def parse_options(items: Sequence[str]) -> dict:
    options = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValidationError(f"--option must look like KEY=VALUE, got {item!r}.",
                                  parameter="option", value=item)
        try:
            options[key] = json.loads(raw)
        except json.JSONDecodeError:
            options[key] = raw
    return options


def _run_solve(args) -> int:
    engine = _engine_from_args(args)
    strategy, options = _strategy_from_args(args)
    try:
        result = engine.solve(args.question, args.budget, strategy=strategy, **options)
    finally:
        _close_progress(engine)
    if args.json:
        print(json.dumps(result_dict(result), indent=2))
        return 0
    print_result(result)
    return 0


def result_dict(result) -> dict:
    return {"answer": result.answer, "status": result.status, "strategy": result.strategy,
            "plan": result.plan.describe(), "tokens": dict(result.tokens), "cost": result.cost,
            "budget": result.budget, "votes": dict(result.votes),
            "votes_by_model": {m: dict(v) for m, v in result.votes_by_model.items()},
            "difficulty": result.difficulty,
            "escalated": result.escalated, "trace": list(result.trace),
            "problem_id": result.problem_id}


def print_result(result) -> None:
    table = Table(show_header=False, box=None)
    table.add_row("answer", f"[bold]{safe(result.answer)}[/]" if result.answer is not None
                  else f"[yellow]none ({safe(result.status)})[/]")
    table.add_row("plan", safe(result.plan.describe()))
    table.add_row("spent", f"{result.cost:,.0f} of {result.budget:,.0f} units")
    table.add_row("tokens", ", ".join(f"{safe(m)}: {t:,}" for m, t in result.tokens.items())
                  or "-")
    by_model = result.votes_by_model or ({"": result.votes} if result.votes else {})
    table.add_row("votes", "\n".join(
        (f"{safe(m)}: " if m else "") + (", ".join(f"{safe(a)} x{c}" for a, c in v.items())
                                         or "none")
        for m, v in by_model.items()) or "-")
    if result.difficulty is not None:
        table.add_row("difficulty", f"{result.difficulty:.2f}")
    table.add_row("trace", "\n".join(safe(line) for line in result.trace))
    console.print(table, width=min(console.width, 80))


# ---- demo ----------------------------------------------------------------------------------
def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="solve bundled GSM8K questions and compare with gold",
                       description="Solve the first N questions of a bank under a budget and "
                                   "print a table with the gold answers.")
    p.add_argument("--n", type=int, default=10, help="number of questions (default 10)")
    p.add_argument("--budget", type=float, default=None,
                   help="budget per question (default 200000 on replay, 3000 with --live)")
    _add_engine_args(p)
    p.set_defaults(run=_run_demo)


def bundled_bank():
    from tts import BUNDLED_BANK

    return BUNDLED_BANK


def _run_demo(args) -> int:
    import time

    from tts.answers import is_correct

    from tts.bank import load_bank

    if args.n < 1:
        raise ValidationError(f"--n must be >= 1, got {args.n}.", parameter="n", value=args.n)
    if args.budget is None:
        args.budget = 3000.0 if args.live else 200_000.0
    engine = _engine_from_args(args)
    bank = engine.backends["small"].bank if not args.live else load_bank(bundled_bank())
    problems = [bank.problems[pid] for pid in bank.problem_ids[:args.n]]
    strategy, options = _strategy_from_args(args)
    start = time.perf_counter()
    try:
        results = engine.solve_many(problems, args.budget, strategy=strategy, **options)
    finally:
        _close_progress(engine)
    elapsed = time.perf_counter() - start
    models = engine.models
    label = {m: _tier_label(role) for role, m in models.items()}
    table = demo_table(
        f"{len(problems)} questions from {safe(bank.meta.name)}, budget {args.budget:,.0f} "
        f"units each",
        "votes, tokens: " + ", ".join(f"{label[m]} = {safe(m)}" for m in models.values())
        + "; ↑ escalated; ✗ wrong (gold)", timed=args.live)
    right = 0
    for problem, r in zip(problems, results):
        ok = is_correct(r.answer, problem.gold)
        right += ok
        timing = [f"{r.seconds:.0f}s"] if args.live else []
        table.add_row(safe(problem.question), safe(r.strategy) + ("↑" if r.escalated else ""),
                      _votes_cell(r, label), _answer_cell(r.answer, problem.gold, ok),
                      "/".join(str(r.tokens.get(m, 0)) for m in models.values()),
                      f"{r.cost:,.0f}", *timing)
    console.print(table, width=min(console.width, 80))
    console.print(f"accuracy {right}/{len(problems)}; mean cost "
                  f"{sum(r.cost for r in results) / len(results):,.0f} units; "
                  f"{elapsed:.3f} s", soft_wrap=True)
    return 0


def demo_table(title: str, caption: str, *, timed: bool) -> Table:
    """The demo's columns. The question may be cut (with …), and so may an answer that is not
    a number (`_short`); numbers never are: plan, tokens, cost and time stay on one line,
    votes and answers wrap (a number wider than its column folds onto the next line)."""
    table = Table(title=title, caption=caption, box=box.SIMPLE_HEAD, padding=(0, 1),
                  pad_edge=False, collapse_padding=True)
    table.add_column("question", no_wrap=True, overflow="ellipsis", max_width=12)
    table.add_column("plan", no_wrap=True)
    table.add_column("votes", overflow="fold", max_width=14)
    table.add_column("answer", overflow="fold", max_width=14)
    for numbers in ("tokens", "cost", *(("time",) if timed else ())):
        table.add_column(numbers, no_wrap=True, justify="right")
    return table


_NUMBER = re.compile(r"[-+$]?[\d.,/]*\d[\d.,/]*%?")
"""An answer that reads as a number (or a date, a fraction): shown whole."""


def _short(answer: object, width: int = 8) -> str:
    """`answer` as text, cut to `width` characters with … unless it is a number."""
    text = str(answer)
    return text if len(text) <= width or _NUMBER.fullmatch(text) else text[:width - 1] + "…"


def _answer_cell(answer: str | None, gold: str | None, ok: bool) -> str:
    """`18 ✓`, or `-10000 ✗ (70000)` with the gold answer."""
    if ok:
        return f"{safe(_short(answer, 12))} [green]✓[/]"
    return f"{safe(_short(answer, 12))} [red]✗[/] ({safe(_short(gold, 12))})"


def _tier_label(role: str) -> str:
    return {"small": "S", "large": "L"}.get(role, role.replace("tier", "T"))


def _votes_cell(result, label: dict) -> str:
    """One line per model that voted, cheapest tier first: `S 18x3 20 +2` (the two leading
    answers with their counts, then the number of other votes)."""
    by_model = result.votes_by_model or {}
    lines = []
    for model, votes in by_model.items():
        base, _, extra = model.partition(":")
        tag = label.get(base, safe(base)) + (f":{safe(extra)}" if extra else "")
        items = list(votes.items())
        shown = [f"{safe(_short(a))}x{c}" if c > 1 else safe(_short(a)) for a, c in items[:2]]
        rest = sum(c for _, c in items[2:])
        counts = " ".join(shown + ([f"+{rest}"] if rest else []))
        lines.append(f"{tag} {counts or '-'}")
    return "\n".join(lines) or "-"


if __name__ == "__main__":
    sys.exit(main())
