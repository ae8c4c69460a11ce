"""`tts tune`: the command line of the one tuner (`tts.tuning.run_tune`): flags, the checks
made before any tuning runs, progress, and the files and table it writes."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

from tts.cli_args import (add_bank, add_budgets, add_count_prompt, add_no_progress, add_out,
                          add_seed, add_seeds, check_writable, command_line,
                          progress_bar)
from tts.budgets import check_budget
from tts.errors import ValidationError
from tts.tuning.folds import GROUP_BY, read_groups
from tts.tuning.reference import REFERENCES
from tts.tuning.studies import check_storage, open_storage

if TYPE_CHECKING:
    import argparse

__all__ = ["add_cli", "OBJECTIVES"]

OBJECTIVES = ("cost", "accuracy")

_FLAGS: tuple[tuple[str, dict], ...] = (
    ("--objective", dict(choices=OBJECTIVES, default="accuracy",
                         help="accuracy: the most accurate plan (within --max-cost-share); "
                              "cost: the cheapest plan that matches the top model (or "
                              "--target-accuracy) on inner held-out questions, else the top "
                              "model alone")),
    ("--budget", dict(type=float, default=None,
                      help="budget per question in units (default 262144)")),
    ("--target-accuracy", dict(type=float, default=None,
                               help="cost objective: accuracy to reach, in (0, 1] (default: "
                                    "the top model's; with --reference top: the agreement with "
                                    "the top model to reach, required)")),
    ("--trials", dict(type=int, default=200, help="trials per study (default 200)")),
    ("--storage", dict(default=None, help="Optuna RDB URL (e.g. sqlite:///tune.db): "
                                          "resumable, shareable by several workers")),
    ("--study-name", dict(default=None, help="study name prefix in --storage")),
    ("--se-margin", dict(type=float, default=None,
                         help="selection margin in standard errors (a tuned plan must beat the "
                              "best fixed plan by this much); default: chosen by inner "
                              "cross-validation")),
    ("--ladder", dict(default=None,
                      help="comma-separated models of the bank, cheapest first (default: the "
                           "bank's small and large models); or rungs as model:mode, e.g. "
                           "small:sample,small:chain-1024,large:greedy (a chain-<L> mode: a "
                           "rung of long chains; tuned on the questions that hold every named "
                           "mode)")),
    ("--folds", dict(type=int, default=5,
                     help="outer k-fold (every question held out once; default 5)")),
    ("--group-by", dict(choices=GROUP_BY, default=None,
                        help="fold by question (default), by scenario (a question's first "
                             "sentence), by subject (the id before its last '/', as in banks "
                             "of tts bank import-routellm) or by tag (--groups) so whole "
                             "groups are held out; the report names the worst group")),
    ("--groups", dict(default=None, metavar="FILE",
                      help="JSON object mapping every question id of the bank to a group "
                           "(a subject, a source, a tag): folds hold groups out whole and the "
                           "report names the worst (implies --group-by tag)")),
    ("--reference", dict(choices=REFERENCES, default="gold",
                         help="gold: tune for accuracy (default); top: tune for agreement with "
                              "the top model's greedy answer, for banks without gold (audit "
                              "banks, your own logs)")),
    ("--prior", dict(choices=("prompt", "router"), default="prompt",
                     help="the prompt prior a rung's climb score reads: hand-made prompt "
                          "features, or a router on sentence embeddings (needs `tts models "
                          "pull embed`), which the search may also use to skip a rung")),
    ("--max-cost-share", dict(type=float, default=None,
                              help="accuracy objective: mean cost at most this share of the "
                                   "top model's")),
)
"""`tts tune`'s own flags (the shared ones come from `tts.cli_args`)."""


def add_cli(sub: argparse._SubParsersAction) -> None:
    """Mount `tts tune` on the CLI."""
    p = sub.add_parser(
        "tune", help="tune a ladder policy with Optuna; report it on held-out questions",
        description="Tune a ladder policy (which rungs to climb and when, per budget) with "
                    "Optuna and nested cross-validation on a replay bank; report accuracy and "
                    "cost on held-out questions only, and what the deployed plan itself is "
                    "expected to score. Writes policy.json (tuned on every question: for new "
                    "questions, `tts solve --policy`, `tts serve --policy`), "
                    "crossfit_policy.json (each question decided by the fold policy that never "
                    "saw it: `tts sweep --policy` gives held-out numbers) and report.json "
                    "into --out.")
    add_bank(p)
    add_budgets(p, "comma-separated increasing budgets: one tuned level each")
    add_seeds(p, 3, "sample orders per trial on train (default 3); held-out uses others")
    add_seed(p, "seed of the split and the sampler")
    add_count_prompt(p)
    add_out(p, "tune-results", "output folder (default ./tune-results)")
    add_no_progress(p)
    for flag, options in _FLAGS:
        p.add_argument(flag, **options)
    p.set_defaults(run=_run_cli)


def _grouping(args: argparse.Namespace) -> str | dict[str, str]:
    """The folds' grouping: "question", "scenario", or the --groups file's mapping."""
    if args.groups is None:
        if args.group_by == "tag":
            raise ValidationError("--group-by tag needs --groups FILE (a JSON object mapping "
                                  "question id to group).", parameter="groups")
        return args.group_by or "question"
    if args.group_by not in (None, "tag"):
        raise ValidationError(f"--groups FILE groups by its tags; it cannot be combined with "
                              f"--group-by {args.group_by}.", parameter="groups")
    return read_groups(args.groups)


def _checked(args: argparse.Namespace) -> list[float]:
    """Everything that can be refused, refused before any tuning runs; the budgets (the
    grouping is read into `args.grouping`)."""
    args.grouping = _grouping(args)
    if args.budget is not None and args.budgets is not None:
        raise ValidationError("give --budget or --budgets, not both.", parameter="budgets")
    if args.budgets is not None:
        try:
            budgets = [float(x.replace("_", "")) for x in args.budgets.split(",") if x.strip()]
        except ValueError:
            raise ValidationError(f"--budgets must be comma-separated numbers, got "
                                  f"{args.budgets!r}.", parameter="budgets") from None
        budgets = [check_budget(b, "--budgets") for b in budgets]
        if not budgets or any(b <= a for a, b in zip(budgets, budgets[1:])):
            raise ValidationError(f"--budgets must be increasing, got {args.budgets!r}.",
                                  parameter="budgets")
    else:
        budgets = [check_budget(args.budget if args.budget is not None else 262144.0,
                                "--budget")]
    if args.seeds < 1:
        raise ValidationError(f"--seeds must be >= 1, got {args.seeds}.", parameter="seeds")
    if args.trials < 1:
        raise ValidationError(f"--trials must be >= 1, got {args.trials}.", parameter="trials")
    if args.folds < 2:
        raise ValidationError(f"--folds must be >= 2, got {args.folds}.", parameter="folds")
    for flag, value, low in (("--target-accuracy", args.target_accuracy, 0.0),
                             ("--max-cost-share", args.max_cost_share, 0.0)):
        if value is not None and not (math.isfinite(value) and low < value <= 1.0):
            raise ValidationError(f"{flag} must be in (0, 1], got {value:g}.",
                                  parameter=flag.lstrip("-").replace("-", "_"), value=value)
    if args.se_margin is not None and not (math.isfinite(args.se_margin)
                                           and args.se_margin >= 0):
        raise ValidationError(f"--se-margin must be a number >= 0, got {args.se_margin:g}.",
                              parameter="se_margin", value=args.se_margin)
    check_storage(args.storage)
    check_writable(args.out, ("policy.json", "report.json", "crossfit_policy.json"))
    return budgets


def _run_cli(args: argparse.Namespace) -> int:
    from rich.console import Console

    import tts
    from tts.bank import load_bank
    from tts.evaluate import BankArrays
    from tts.tuning.render import json_safe, print_tune_table
    from tts.tuning.report import run_tune

    budgets = _checked(args)
    arrays = BankArrays.from_bank(load_bank(args.bank if args.bank is not None
                                            else tts.BUNDLED_BANK))
    ladder = None if args.ladder is None else [m.strip() for m in args.ladder.split(",")
                                               if m.strip()]
    seeds = list(range(args.seed, args.seed + args.seeds))
    heldout_seeds = list(range(args.seed + 100, args.seed + 100 + args.seeds))
    with progress_bar(args.no_progress) as bar:
        task = bar.add_task("tuning", total=args.trials)

        def progress(what: str, n: int) -> None:
            bar.update(task, completed=n, description=f"tuning {what}")

        out = run_tune(arrays, ladder, objective=args.objective, budgets=budgets,
                       target=args.target_accuracy, trials=args.trials, folds=args.folds,
                       group_by=args.grouping, reference=args.reference, seeds=seeds,
                       heldout_seeds=heldout_seeds,
                       count_prompt=args.count_prompt, max_cost_share=args.max_cost_share,
                       margin=args.se_margin, split_seed=args.seed, sampler_seed=args.seed,
                       storage=open_storage(args.storage), study_name=args.study_name,
                       progress=progress, prior=args.prior)
    args.out.mkdir(parents=True, exist_ok=True)
    out["report"]["command"] = command_line("tune")
    out["policy"].to_json(args.out / "policy.json")
    (args.out / "crossfit_policy.json").write_text(
        json.dumps(out["crossfit"].to_dict(), indent=2) + "\n", encoding="utf-8")
    (args.out / "report.json").write_text(
        json.dumps(json_safe(out["report"]), indent=2, allow_nan=False) + "\n",
        encoding="utf-8")
    console = Console()
    print_tune_table(out["report"], console)
    console.print(f"wrote {args.out / 'policy.json'} (tuned on every question), "
                  f"{args.out / 'crossfit_policy.json'} (for held-out sweeps) and "
                  f"{args.out / 'report.json'} ({out['report']['elapsed_s']} s)",
                  highlight=False)
    return 0
