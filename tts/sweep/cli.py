"""`tts sweep`: the command that runs a budget sweep and writes its CSV, PNG and markdown."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tts.cli_args import (add_bank, add_budgets, add_count_prompt, add_no_progress, add_out,
                          add_policy,
                          add_seeds, check_writable, parse_budgets)
from tts.errors import BankError, ValidationError
from tts.sweep.plans import read_heldout
from tts.sweep.runner import DEFAULT_BUDGETS, run_sweep

if TYPE_CHECKING:
    import argparse

__all__ = ["add_cli"]


def add_cli(sub: argparse._SubParsersAction) -> None:
    """Mount `tts sweep` on the CLI."""
    p = sub.add_parser(
        "sweep", help="accuracy vs budget of every strategy, the policy and the oracle",
        description="Run every fixed strategy, the policy and the per-question oracle on a "
                    "replay bank at each budget, with bootstrap CIs; write CSV, PNG and "
                    "markdown into --out. Resumes from --out's CSV when the settings match.")
    add_bank(p)
    add_budgets(p, "comma-separated, strictly increasing budgets per question "
                   "(default: 512,1024,...,524288)")
    p.add_argument("--strategies", default=None,
                   help="comma-separated plans: vote@N, vote, chain, escalate, escalate@N, "
                        "cascade, adaptive, policy, oracle, and the peers: mot-1d-vote@T, "
                        "mot-2d-vote@T, mot-verify, esc@W, adaptive-consistency, router@S, or "
                        "peers for all (default: vote@1,2,4,..., vote, chain, escalate, "
                        "cascade, policy, oracle)")
    add_policy(p, "tuned policy JSON (default: the built-in default policy); if it names its "
                  "training split, only the other questions are scored")
    p.add_argument("--heldout", type=Path, default=None,
                   help="file of question ids to evaluate (JSON list, {\"heldout_ids\": [...]} "
                        "or one per line)")
    p.add_argument("--ladder", default=None,
                   help="comma-separated models of the bank, cheapest first (default: the "
                        "policy's ladder, else the bank's small and large models)")
    add_count_prompt(p)
    add_seeds(p, 5, "seeded sample orders (default 5)")
    p.add_argument("--bootstrap", type=int, default=200,
                   help="bootstrap resamples for the 95%% CIs (default 200)")
    add_out(p, "sweep-results", "output folder for sweep.csv/.png/.md (default ./sweep-results)")
    p.add_argument("--fresh", action="store_true",
                   help="ignore and overwrite an existing sweep.csv in --out instead of resuming")
    add_no_progress(p)
    p.set_defaults(run=_run_cli)


def _run_cli(args: argparse.Namespace) -> int:
    import shlex

    from rich.console import Console

    from tts.sweep.report import print_table

    budgets = DEFAULT_BUDGETS if args.budgets is None else parse_budgets(args.budgets)
    strategies = None
    if args.strategies is not None:
        strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
        if not strategies:
            raise ValidationError("--strategies must name at least one plan.",
                                  parameter="strategies", value=args.strategies)
    if args.bank is not None and not args.bank.exists():
        raise BankError(f"bank {args.bank} does not exist.")
    heldout = read_heldout(args.heldout) if args.heldout is not None else None
    check_writable(args.out, ["sweep.csv", "sweep.png", "sweep.md"])
    result = run_sweep(args.bank, budgets, strategies=strategies, policy=args.policy,
                       seeds=args.seeds, bootstrap=args.bootstrap, heldout_ids=heldout,
                       progress=not args.no_progress, checkpoint=args.out / "sweep.csv",
                       resume=not args.fresh, count_prompt=args.count_prompt or None,
                       ladder=None if args.ladder is None else
                       [m.strip() for m in args.ladder.split(",") if m.strip()])
    command = "tts sweep " + " ".join(shlex.quote(a) for a in _argv_from(args))
    paths = result.write(args.out, command=command)
    console = Console()
    for note in result.notes:
        Console(stderr=True).print(f"note: {note}", highlight=False, markup=False)
    print_table(result.report(), console)
    console.print(f"{result.split_note}; {result.elapsed:.1f} s"
                  + (f" ({len(result.resumed_budgets)} budgets resumed)"
                     if result.resumed_budgets else ""), highlight=False)
    console.print("wrote " + ", ".join(str(p) for p in paths.values()), highlight=False)
    return 0


def _argv_from(args: argparse.Namespace) -> list[str]:
    out: list[str] = []
    for flag, value in (("--bank", args.bank), ("--budgets", args.budgets),
                        ("--strategies", args.strategies), ("--policy", args.policy),
                        ("--heldout", args.heldout), ("--seeds", args.seeds),
                        ("--bootstrap", args.bootstrap), ("--out", args.out),
                        ("--ladder", args.ladder)):
        if value is not None:
            out += [flag, str(value)]
    return out + (["--count-prompt"] if args.count_prompt else [])
