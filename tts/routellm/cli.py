"""`tts bank import-routellm SRC DEST`: RouteLLM evaluation logs into a bank (mounted by
`tts.bank_cli`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from tts.bank import read_json_file
from tts.cli_args import add_import
from tts.console import console, err_console, safe
from tts.errors import BankError

__all__ = ["register"]


def register(bsub, *, show: Callable[[argparse.Namespace], int]) -> None:
    """Add `import-routellm` to the `tts bank` subcommands; `show(Namespace(path=...))` prints
    the new bank (`tts bank info`)."""
    imp = add_import(
        bsub, "import-routellm", "import RouteLLM evaluation logs (CSV) into a bank",
        "Build a bank from RouteLLM-format logs SRC (a CSV with a `prompt` column "
        "and one True/False column per model, optional `<model>_response` "
        "columns; a folder of them; or a folder whose responses/ holds them, e.g. "
        "../shared/data/routellm_mmlu) into the new folder DEST: one greedy "
        "record per model, correctness as logged, prompts listed in "
        "contaminated_prompts.jsonl left out. The rules are in the bank's notes.",
        "JSONL of {question, answer} (e.g. gsm8k/test.jsonl): extract and re-grade the "
        "response texts instead of the logged correctness")
    imp.add_argument("--keep-text", action="store_true", help="also store the response texts")
    imp.add_argument("--keep-contaminated", action="store_true",
                     help="keep the prompts contaminated_prompts.jsonl lists")
    imp.add_argument("--prices", type=Path, default=None,
                     help="JSON {model: [usd_prompt_per_M, usd_output_per_M]} for models "
                          "without a built-in price")
    imp.add_argument("--completion-tokens", type=int, default=None,
                     help="tokens per answer when the logs hold no texts (non-choice tasks)")
    imp.add_argument("--force", action="store_true", help="replace an existing bank at DEST")
    imp.set_defaults(run=lambda args: _run(args, show))


def _run(args: argparse.Namespace, show: Callable[[argparse.Namespace], int]) -> int:
    from rich.progress import Progress

    from tts.bank import load_bank
    from tts.routellm.importer import import_routellm

    prices = None
    if args.prices is not None:
        prices = read_json_file(args.prices, what="--prices file")
        if not isinstance(prices, dict):
            raise BankError(f"--prices file {args.prices} must hold a JSON object "
                            f"{{model: [usd_prompt_per_M, usd_output_per_M]}}.")
    if args.completion_tokens is not None and args.completion_tokens < 1:
        raise BankError(f"--completion-tokens must be >= 1, got {args.completion_tokens}.")
    with Progress(console=err_console, transient=True) as progress:
        task = progress.add_task("importing RouteLLM logs", total=None)
        path = import_routellm(args.src, args.dest, gold=args.gold, keep_text=args.keep_text,
                               keep_contaminated=args.keep_contaminated, prices=prices,
                               completion_tokens=args.completion_tokens, force=args.force,
                               progress=lambda i, n: progress.update(task, completed=i,
                                                                     total=n))
    console.print(f"wrote bank {safe(path)}")
    show(argparse.Namespace(path=path))
    console.print(f"notes: {safe(load_bank(path).meta.notes)}", soft_wrap=True)
    return 0
