"""`tts tune`: the command line of both tuners, a flat policy (`tts.tune.run_tune`) or a
ladder policy (`tts.tune_ladder.run_ladder_tune`, with `--ladder` or the cost objective):
flags, the checks made before any tuning runs, progress, and the files and table it writes.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from tts.budgets import check_budget
from tts.cli_args import (add_bank, add_budgets, add_count_prompt, add_no_progress, add_out,
                          add_seed, add_seeds, check_writable, command_line, progress_bar)
from tts.errors import ValidationError
from tts.studies import check_storage, open_storage
from tts.tune_select import SE_MARGIN
from tts.tune_space import OBJECTIVES

if TYPE_CHECKING:
    import argparse

    from tts.evaluate import BankArrays

__all__ = ["add_cli"]


_FLAGS: tuple[tuple[str, dict], ...] = (
    ("--objective", dict(choices=OBJECTIVES, default="accuracy",
                         help="accuracy: max accuracy at the budget; cost: min cost at "
                              "--target-accuracy; pareto: NSGA-II accuracy/cost front")),
    ("--budget", dict(type=float, default=None,
                      help="budget per question in units (default 262144)")),
    ("--target-accuracy", dict(type=float, default=None,
                               help="cost objective: accuracy to reach (default: the large "
                                    "model's accuracy on the train questions)")),
    ("--trials", dict(type=int, default=200, help="trials per study (default 200)")),
    ("--storage", dict(default=None, help="Optuna RDB URL (e.g. sqlite:///tune.db): "
                                          "resumable, shareable by several workers")),
    ("--study-name", dict(default=None, help="study name prefix in --storage")),
    ("--se-margin", dict(type=float, default=SE_MARGIN,
                         help="selection guard: keep the tuned level only if it beats the best "
                              "fixed plan on the train questions by more than this many "
                              "standard errors of the paired per-question difference (default "
                              f"{SE_MARGIN:g}; 0: any gain)")),
    ("--ladder", dict(default=None,
                      help="comma-separated models of the bank, cheapest first: tune a ladder "
                           "policy (votes, mixture-of-thought checks, climbing) with nested "
                           "cross-validation of its selection margin (tts.tune_ladder); or "
                           "rungs as model:mode, e.g. small:sample,small:chain-1024,"
                           "large:greedy (a chain-<L> mode: a rung of long chains; tuned on "
                           "the questions that hold every named mode)")),
    ("--group-by", dict(choices=("question", "scenario"), default="question",
                        help="ladder tuning: fold by question, or by scenario (a question's "
                             "first sentence) so whole scenarios are held out")),
    ("--max-cost-share", dict(type=float, default=None,
                              help="ladder tuning, accuracy objective: mean cost at most this "
                                   "share of the top model's")),
)
"""`tts tune`'s own flags (the shared ones come from `tts.cli_args`)."""

_SPLIT_FLAGS: tuple[tuple[str, dict], ...] = (
    ("--folds", dict(type=int, default=None,
                     help="k-fold by question (every question held out once)")),
    ("--heldout-fraction", dict(type=float, default=0.3,
                                help="share of questions held out (default 0.3)")),
)
"""How questions are split (one of the two)."""


def add_cli(sub: argparse._SubParsersAction) -> None:
    """Mount `tts tune` on the CLI."""
    p = sub.add_parser(
        "tune", help="tune a policy with Optuna on a train split; report it held-out",
        description="Search policy parameters with Optuna on the train questions of a replay "
                    "bank and report accuracy and cost on held-out questions only. Writes "
                    "policy.json (usable with `tts solve --policy`, `tts sweep --policy`) and "
                    "report.json into --out.")
    add_bank(p)
    add_budgets(p, "comma-separated increasing budgets: one tuned level each (accuracy "
                   "objective)")
    add_seeds(p, 3, "sample orders per trial on train (default 3); held-out uses others")
    add_seed(p, "seed of the split and the sampler")
    add_count_prompt(p)
    add_out(p, "tune-results", "output folder (default ./tune-results)")
    add_no_progress(p)
    for flag, options in _FLAGS:
        p.add_argument(flag, **options)
    split = p.add_mutually_exclusive_group()
    for flag, options in _SPLIT_FLAGS:
        split.add_argument(flag, **options)
    p.set_defaults(run=_run_cli)


def _run_cli(args: argparse.Namespace) -> int:
    from rich.console import Console

    import tts
    from tts.bank import load_bank
    from tts.evaluate import BankArrays
    from tts.tune import run_tune
    from tts.tune_render import print_tune_table

    if args.budget is not None and args.budgets is not None:
        raise ValidationError("give --budget or --budgets, not both.", parameter="budgets")
    if args.budgets is not None:
        try:
            budgets = [float(x) for x in args.budgets.split(",") if x.strip()]
        except ValueError:
            raise ValidationError(f"--budgets must be comma-separated numbers, got "
                                  f"{args.budgets!r}.", parameter="budgets") from None
    else:
        budgets = [args.budget if args.budget is not None else 262144.0]
    # Everything that can be refused is refused before any tuning runs.
    budgets = [check_budget(b, "--budget" if args.budgets is None else "--budgets")
               for b in budgets]
    if args.seeds < 1:
        raise ValidationError(f"--seeds must be >= 1, got {args.seeds}.", parameter="seeds")
    check_storage(args.storage)
    check_writable(args.out, ("policy.json", "report.json", "crossfit_policy.json"))
    bank_path = args.bank if args.bank is not None else tts.BUNDLED_BANK
    arrays = BankArrays.from_bank(load_bank(bank_path))
    if args.ladder is None and args.objective == "cost" and "large" in arrays.models:
        # The cost objective is the savings question: tune it on the small > large ladder.
        args.ladder = f"{arrays.models['small']},{arrays.models['large']}"
    if args.ladder is not None:
        return _run_ladder_cli(args, arrays, budgets)
    seeds, heldout_seeds = _seeds(args)
    studies = (len(budgets) * ((args.folds + 1) if args.folds else 1))
    with progress_bar(args.no_progress) as bar:
        task = bar.add_task("tuning", total=studies * args.trials)
        finished: dict[str, int] = {}

        def progress(what: str, n: int) -> None:
            finished[what] = n
            bar.update(task, completed=sum(finished.values()), description=f"tuning {what}")

        out = run_tune(arrays, objective=args.objective, budgets=budgets,
                       target=args.target_accuracy, trials=args.trials, folds=args.folds,
                       heldout_fraction=args.heldout_fraction, seeds=seeds,
                       heldout_seeds=heldout_seeds, split_seed=args.seed,
                       sampler_seed=args.seed, count_prompt=args.count_prompt,
                       storage=args.storage, study_name=args.study_name, progress=progress,
                       se_margin=args.se_margin)
    args.out.mkdir(parents=True, exist_ok=True)
    if "crossfit" in out:
        (args.out / "crossfit_policy.json").write_text(
            json.dumps(out["crossfit"].to_dict(), indent=2) + "\n", encoding="utf-8")
    _write(args, out)
    console = Console()
    print_tune_table(out["report"], console)
    _wrote(args, out["report"], console)
    return 0


def _run_ladder_cli(args: argparse.Namespace, arrays: BankArrays, budgets: list[float]) -> int:
    from rich.console import Console

    from tts.tune_ladder import run_ladder_tune
    from tts.tune_render import print_ladder_tune_table

    ladder = [m.strip() for m in args.ladder.split(",") if m.strip()]
    if args.objective == "pareto":
        raise ValidationError("ladder tuning has objectives 'cost' and 'accuracy'.",
                              parameter="objective", value=args.objective)
    if len(budgets) != 1:
        raise ValidationError("ladder tuning takes one --budget.", parameter="budgets")
    folds = args.folds if args.folds is not None else 5
    args.out.mkdir(parents=True, exist_ok=True)
    seeds, heldout_seeds = _seeds(args)
    with progress_bar(args.no_progress) as bar:
        task = bar.add_task("tuning", total=args.trials)

        def progress(what: str, n: int) -> None:
            bar.update(task, completed=n, description=f"tuning {what}")

        out = run_ladder_tune(arrays, ladder, objective=args.objective, budget=budgets[0],
                              target=args.target_accuracy, trials=args.trials, folds=folds,
                              group_by=args.group_by, seeds=seeds, heldout_seeds=heldout_seeds,
                              count_prompt=args.count_prompt,
                              max_cost_share=args.max_cost_share, split_seed=args.seed,
                              sampler_seed=args.seed, storage=open_storage(args.storage),
                              study_name=args.study_name, progress=progress)
    _write(args, out)
    console = Console()
    print_ladder_tune_table(out["report"], ladder, folds, args.group_by, console)
    _wrote(args, out["report"], console)
    return 0


def _seeds(args: argparse.Namespace) -> tuple[list[int], list[int]]:
    """Training seeds from --seed, and as many held-out seeds from --seed + 100."""
    return (list(range(args.seed, args.seed + args.seeds)),
            list(range(args.seed + 100, args.seed + 100 + args.seeds)))


def _write(args: argparse.Namespace, out: dict) -> None:
    """policy.json and report.json (with the command line) into --out."""
    out["report"]["command"] = command_line("tune")
    out["policy"].to_json(args.out / "policy.json")
    (args.out / "report.json").write_text(json.dumps(out["report"], indent=2, default=float)
                                          + "\n", encoding="utf-8")


def _wrote(args: argparse.Namespace, report: dict, console) -> None:
    console.print(f"wrote {args.out / 'policy.json'} and {args.out / 'report.json'} "
                  f"({report['elapsed_s']} s)", highlight=False)
