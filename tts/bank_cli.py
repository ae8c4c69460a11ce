"""`tts bank import-mot | build | info`: the command line of building and inspecting sample
banks (`tts.mot`, `tts.build`, `tts.bank`)."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

from tts.cli_args import add_import, check_writable
from tts.console import console, err_console, safe
from tts.errors import ValidationError
from tts.routellm.cli import register as add_import_routellm

__all__ = ["add_cli", "print_bank_table"]


_BUILD_FLAGS: tuple[tuple[str, dict], ...] = (
    ("dest", dict(type=Path)),
    ("--model", dict(default="small", help="vLLM model: tiny, small, large or a HF folder "
                                           "(default small)")),
    ("--server", dict(default=None, help="OpenAI-compatible base URL (e.g. "
                                         "http://127.0.0.1:8000/v1) instead of in-process vLLM")),
    ("--served-model", dict(default=None, help="model name on the server")),
    ("--questions", dict(type=Path, default=None, help="JSONL of GSM8K rows (question, answer) "
                                                       "or MATH rows (problem, answer); default:"
                                                       " the bundled GSM8K questions")),
    ("--start", dict(type=int, default=0, help="first question: line index in --questions (ids "
                                               "<stem>-<index>, gsm8k-test-<index> for "
                                               "gsm8k/test.jsonl), or position in the bundled "
                                               "bank")),
    ("--n", dict(type=int, default=None, help="only N questions (from --start)")),
    ("--role", dict(default="small", choices=("small", "large"),
                    help="role of this model in the bank (build small and large into one "
                         "folder with two runs)")),
    ("--samples", dict(type=int, default=8, help="samples per question (mode sample; 0: none "
                                                 "this run)")),
    ("--greedy", dict(action="store_true", help="also one greedy answer")),
    ("--chain-tokens", dict(type=int, default=0, help="also one long chain of up to this many "
                                                      "tokens (mode chain)")),
    ("--chain-lengths", dict(default="", help="comma-separated lengths L of budget-forced chains"
                                              " (modes chain-<L>), e.g. 1024,2048")),
    ("--chains", dict(type=int, default=2, help="budget-forced chains per question and length "
                                                "(default 2)")),
    ("--answer-tokens", dict(type=int, default=32, help="forced chains: greedy tokens of the "
                                                        "forced final answer")),
    ("--max-waits", dict(type=int, default=16,
                         help="forced chains: 'Wait' continuations at most")),
    ("--max-tokens", dict(type=int, default=512, help="tokens per sample")),
    ("--temperature", dict(type=float, default=0.7)),
    ("--seed", dict(type=int, default=0)),
    ("--batch", dict(type=int, default=16, help="questions per generate call")),
    ("--no-logprobs", dict(action="store_true", help="do not ask for logprobs (no mean logprob "
                                                     "or confidence)")),
    ("--gzip", dict(action="store_true", help="refresh samples.jsonl.gz after every batch "
                                              "(committed form)")),
    ("--no-prefix-caching", dict(action="store_true", help="vLLM: recompute shared prompt "
                                                           "prefixes, so a resumed build equals "
                                                           "an uninterrupted one bit for bit "
                                                           "(slower, above all for chains)")),
)
"""`tts bank build`'s arguments."""


def add_cli(sub) -> None:
    """Mount `tts bank import-mot | build | info` on the CLI."""
    p = sub.add_parser("bank", help="build and inspect sample banks")
    bsub = p.add_subparsers(title="bank commands", metavar="COMMAND")
    imp = add_import(
        bsub, "import-mot", "import a MoT results folder (any task, any tiers) into a bank",
        "Build a replay bank from a Mixture-of-Thought results folder SRC (Yue et "
        "al. 2023 layout: tier folders such as llama2_13B_result/, GPT3_result/, "
        "GPT4_result/ with <task>_{cot,pot}{1,2}.json, <task>_greedy_*.json, "
        "optional *_exec_aligned.json and source/<task>.py prompts; e.g. "
        "../shared/data/mot_date) into the new folder DEST. Every tier becomes a "
        "model, CoT and PoT its modes; the rules are in the bank's notes. A failed "
        "import leaves nothing behind.",
        "JSONL of {question, gold_corrected} overriding the logged gold (null keeps it), e.g. "
        "mot_date/gold_corrected.jsonl")
    imp.add_argument("--task", default=None,
                     help="task file prefix (e.g. date, gsm) when SRC holds several")
    imp.add_argument("--keep-text", action="store_true",
                     help="also store sample texts (the logs have no license: keep private)")
    imp.add_argument("--force", action="store_true", help="replace an existing bank at DEST")
    imp.set_defaults(run=_run_import_mot)
    add_import_routellm(bsub, show=_run_bank_info)
    build = bsub.add_parser(
        "build", help="generate samples with a live model into a bank (resumable)",
        description="Generate samples per question with vLLM (--model) or an OpenAI-compatible "
        "server (--server) and append them to the bank folder DEST; re-running "
        "resumes. Questions: the bundled GSM8K ones, or --questions JSONL.")
    for flag, options in _BUILD_FLAGS:
        build.add_argument(flag, **options)
    build.set_defaults(run=_run_bank_build)
    info = bsub.add_parser("info", help="summarise a bank")
    info.add_argument("path", type=Path)
    info.set_defaults(run=_run_bank_info)
    p.set_defaults(run=lambda args: p.print_help())


def _run_import_mot(args) -> int:
    from rich.progress import Progress

    from tts.mot import import_mot

    with Progress(console=err_console, transient=True) as progress, \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        task = progress.add_task("importing MoT logs", total=None)
        path = import_mot(args.src, args.dest, gold=args.gold, task=args.task,
                          keep_text=args.keep_text, force=args.force,
                          progress=lambda i, n: progress.update(task, completed=i, total=n))
    for warning in caught:
        err_console.print(f"[yellow]warning:[/] {safe(str(warning.message))}", soft_wrap=True,
                          highlight=False)
    console.print(f"wrote bank {safe(path)}")
    _run_bank_info(argparse.Namespace(path=path))
    from tts.bank import load_bank

    meta = load_bank(path).meta
    console.print(f"ladder: {' < '.join(meta.ladder)}")
    console.print(f"notes: {safe(meta.notes)}", soft_wrap=True)
    return 0


def _run_bank_build(args) -> int:
    import os
    import time

    from rich.progress import Progress

    from tts import BUNDLED_BANK
    from tts.bank import load_bank
    from tts.budgets import QWEN_PARAMS, CostModel, ModelCost
    from tts.build import build_bank, read_questions

    if args.n is not None and args.n < 1:
        raise ValidationError(f"--n must be >= 1, got {args.n}.", parameter="n", value=args.n)
    from tts.bank import META_FILE, SAMPLES_FILE

    # DEST is checked before a model loads or a question is read (creates the folder).
    check_writable(args.dest, (META_FILE, SAMPLES_FILE), what="bank folder")
    if args.start < 0:
        raise ValidationError(f"--start must be >= 0, got {args.start}.", parameter="start",
                              value=args.start)
    try:
        lengths = [int(x) for x in args.chain_lengths.split(",") if x.strip()]
    except ValueError:
        raise ValidationError(f"--chain-lengths must be comma-separated integers, got "
                              f"{args.chain_lengths!r}.", parameter="chain_lengths") from None
    if args.questions is not None:
        problems = read_questions(args.questions, args.n, start=args.start)
    else:
        bundled = load_bank(BUNDLED_BANK)
        end = None if args.n is None else args.start + args.n
        problems = [bundled.problems[p] for p in bundled.problem_ids[args.start:end]]
        if not problems:
            raise ValidationError(f"--start {args.start} is past the {len(bundled.problems)} "
                                  f"bundled questions.", parameter="start", value=args.start)
    if args.server is not None:
        from tts.backends.openai import OpenAIBackend

        name = args.served_model or args.model
        backend = OpenAIBackend(args.server, model=name, served_model=args.served_model)
    else:
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        from tts.backends.vllm import VLLMBackend

        # Room for the longest chain, its continuation prompts and the forced answer.
        longest = max([args.max_tokens, args.chain_tokens, *lengths]) + args.answer_tokens
        backend = VLLMBackend(args.model,
                              max_model_len=max(2048, -(-(longest + 1024) // 256) * 256),
                              enable_prefix_caching=not args.no_prefix_caching)
    cost = QWEN_PARAMS if backend.model in QWEN_PARAMS.models else CostModel(
        {backend.model: ModelCost(1.0, 1.0)},
        source="unit price: edit meta.json to set this model's price")
    def log(line: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {line}", file=sys.stderr, flush=True)

    try:
        with Progress(console=err_console, transient=True) as progress:
            task = progress.add_task(f"sampling {backend.model}", total=None)
            path = build_bank(backend, problems, args.dest, samples=args.samples,
                              greedy=args.greedy, chain_tokens=args.chain_tokens,
                              chains=args.chains if lengths else 0, chain_lengths=lengths,
                              answer_tokens=args.answer_tokens, max_waits=args.max_waits,
                              max_tokens=args.max_tokens, temperature=args.temperature,
                              seed=args.seed, batch=args.batch, cost=cost, role=args.role,
                              logprobs=not args.no_logprobs, compress=args.gzip, log=log,
                              progress=lambda i, n: progress.update(task, completed=i,
                                                                    total=n))
    finally:
        close = getattr(backend, "close", None)
        if callable(close):
            close()  # engine processes end with the build, interrupted or not
    console.print(f"wrote bank {safe(path)}")
    return _run_bank_info(argparse.Namespace(path=path))


def _run_bank_info(args) -> int:
    from tts.bank import load_bank

    print_bank_table(load_bank(args.path), console)
    return 0


def print_bank_table(bank: Any, console) -> None:
    """`tts bank info`: records, samples per record and mean tokens per (model, mode), then
    the ladder, roles, tokenizer and prices."""
    from rich.table import Table

    table = Table(title=f"bank {safe(bank.meta.name)} ({len(bank.problems)} problems)")
    for col in ("model", "mode", "records", "samples/record", "mean tokens"):
        table.add_column(col)
    for model in bank.models:
        for mode in bank.modes(model):
            recs = [r for (_, m, md), r in bank.records.items() if m == model and md == mode]
            n = sum(len(r.samples) for r in recs)
            tokens = sum(s.tokens for r in recs for s in r.samples)
            table.add_row(safe(model), safe(mode), str(len(recs)), f"{n / len(recs):.1f}",
                          f"{tokens / max(n, 1):.0f}")
    console.print(table)
    console.print(f"ladder: {safe(' > '.join(bank.meta.models_cheapest_first))}")
    console.print(f"roles: {safe(dict(bank.meta.roles))}; tokenizer: "
                  f"{safe(bank.meta.tokenizer)}")
    console.print(f"cost: {safe(bank.meta.cost.source)}")
