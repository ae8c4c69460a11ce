"""Overhead of tts over the raw vLLM engine, on the same requests.

Three ways to get 8 samples for each of 32 GSM8K questions from one warm engine:

- raw:   one `LLM.generate` call with the 256 (prompt ids, SamplingParams) pairs, built
         before the clock starts (the least a caller could do);
- tts:   `Engine.solve_many(questions, budget, strategy=Vote(max_samples=8, wave=8))`, which
         formats, tokenizes, reserves, generates in one batched call, commits, extracts
         answers and counts votes;
- naive: `Engine.solve` one question at a time (no batching across prompts), for contrast.

raw and tts draw the same seeds, so they generate the same tokens (checked). Runs alternate
(raw, tts, naive, raw, tts, ...) and the medians are compared. Writes overhead.csv,
overhead.png and README.md to bench/results/overhead/; the last line printed is
`overhead=<(tts - raw) / raw>`.

    python bench/overhead.py --model tiny --max-tokens 32 --repeats 3
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "overhead"


def _questions(n: int) -> list[str]:
    from tts.bank import load_bank

    bank = load_bank(ROOT / "tts" / "data" / "mot_gsm8k")
    return [bank.problems[pid].question for pid in bank.problem_ids[:n]]


def _cpu() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} x{os.cpu_count()}"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} x{os.cpu_count()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny", help="pulled model (tiny, small, large)")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-naive", action="store_true", help="skip the one-at-a-time runs")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)

    import vllm
    from vllm import SamplingParams

    from tts.backends.vllm import VLLMBackend, derive_seed
    from tts.budgets import Budget
    from tts.engine import Engine
    from tts.prompts import format_question
    from tts.strategies import Vote
    from tts.types import GenRequest

    questions = _questions(args.prompts)
    backend = VLLMBackend(args.model, max_model_len=1024)
    t0 = time.perf_counter()
    backend.load()
    load_s = time.perf_counter() - t0
    print(f"loaded {backend.model} in {load_s:.1f} s ({backend.settings['dtype']})", flush=True)
    seed = 0
    engine = Engine(backend, seed=seed)
    strategy = Vote(max_samples=args.n, wave=args.n, max_tokens=args.max_tokens)
    budget = Budget(tokens=args.n * args.max_tokens * engine.cost.of(backend.model).output * 1.01)

    # The raw requests: exactly what the backend sends for the vote's one wave.
    requests = [GenRequest(prompt=format_question(q), n=args.n, max_tokens=args.max_tokens,
                           temperature=strategy.temperature, seed=seed) for q in questions]
    raw_prompts, raw_params = [], []
    for req in requests:
        ids = backend.prompt_ids(req)
        for i in range(req.n):
            raw_prompts.append({"prompt_token_ids": ids})
            raw_params.append(SamplingParams(n=1, max_tokens=req.max_tokens,
                                             temperature=req.temperature,
                                             seed=derive_seed(seed, i)))

    def run_raw() -> tuple[float, int, list]:
        t = time.perf_counter()
        outs = backend._llm.generate(raw_prompts, raw_params, use_tqdm=False)
        dt = time.perf_counter() - t
        return dt, sum(len(o.outputs[0].token_ids) for o in outs), outs

    def run_tts() -> tuple[float, int, list]:
        backend._ids.clear()  # tokenization counts against tts
        t = time.perf_counter()
        results = engine.solve_many(questions, budget, strategy=strategy)
        dt = time.perf_counter() - t
        return dt, sum(r.tokens[backend.model] for r in results), results

    def run_naive() -> tuple[float, int, list]:
        backend._ids.clear()
        t = time.perf_counter()
        results = [engine.solve(q, budget, strategy=strategy) for q in questions]
        dt = time.perf_counter() - t
        return dt, sum(r.tokens[backend.model] for r in results), results

    # Warm-up (first-call costs are not overhead of either path).
    backend._llm.generate(raw_prompts[:8], raw_params[:8], use_tqdm=False)

    rows = []
    modes = [("raw", run_raw), ("tts", run_tts)] + ([] if args.no_naive else
                                                    [("naive", run_naive)])
    tokens_seen: dict[str, set[int]] = {}
    for rep in range(args.repeats):
        for mode, fn in modes:
            dt, tokens, _ = fn()
            tokens_seen.setdefault(mode, set()).add(tokens)
            rows.append({"mode": mode, "repeat": rep, "seconds": round(dt, 4),
                         "generated_tokens": tokens, "tokens_per_s": round(tokens / dt, 1)})
            print(f"{mode:5s} rep {rep}: {dt:7.2f} s  {tokens} tokens  {tokens / dt:6.1f} tok/s",
                  flush=True)
    same = tokens_seen["raw"] == tokens_seen["tts"] and len(tokens_seen["raw"]) == 1
    med = {m: statistics.median(r["seconds"] for r in rows if r["mode"] == m)
           for m, _ in modes}
    overhead = (med["tts"] - med["raw"]) / med["raw"]

    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "overhead.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    names = [m for m, _ in modes]
    ax.bar(names, [med[m] for m in names], color=["#888888", "#2a7ab9", "#d98c2b"][:len(names)])
    for i, m in enumerate(names):
        pts = [r["seconds"] for r in rows if r["mode"] == m]
        ax.scatter([i] * len(pts), pts, color="black", s=12, zorder=3)
    ax.set_ylabel("wall time (s)")
    ax.set_title(f"{args.prompts} prompts x n={args.n}, {args.max_tokens} tokens, "
                 f"{backend.model}\ntts overhead {overhead:+.1%} (median of {args.repeats})",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(args.out / "overhead.png", dpi=120)

    tokens = next(iter(tokens_seen["raw"]))
    lines = [
        "# Overhead of tts over raw vLLM",
        "",
        f"Command: `python bench/overhead.py --model {args.model} --prompts {args.prompts} "
        f"--n {args.n} --max-tokens {args.max_tokens} --repeats {args.repeats}`",
        "",
        f"- Machine: {_cpu()}; vLLM {vllm.__version__} ({backend.settings['device']}, "
        f"{backend.settings['dtype']}); Python {platform.python_version()}",
        f"- Work: {args.prompts} GSM8K questions x {args.n} samples, up to {args.max_tokens} "
        f"tokens each; {tokens} generated tokens per run; raw and tts generated "
        f"{'the same' if same else 'DIFFERENT'} token counts.",
        f"- Engine load: {load_s:.1f} s (not counted).",
        "",
        "| mode | median s | runs (s) | tok/s (median run) |",
        "| --- | ---: | --- | ---: |",
    ]
    for m in names:
        pts = [r["seconds"] for r in rows if r["mode"] == m]
        toks = [r["generated_tokens"] for r in rows if r["mode"] == m][0]
        lines.append(f"| {m} | {med[m]:.2f} | {', '.join(f'{p:.2f}' for p in pts)} | "
                     f"{toks / med[m]:.1f} |")
    raw_pts = [r["seconds"] for r in rows if r["mode"] == "raw"]
    spread = (max(raw_pts) - min(raw_pts)) / med["raw"]
    lines += ["", f"tts overhead (median tts - median raw) / median raw: **{overhead:+.2%}**; "
                  f"raw alone varies by {spread:.1%} (max - min) / median between its own "
                  f"runs, so a difference this size is noise."]
    if "naive" in med:
        lines.append(f"Naive one-prompt-at-a-time takes {med['naive'] / med['raw']:.2f}x the "
                     f"raw batched time.")
    (args.out / "README.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[-2:]))
    backend.close()
    print(f"overhead={overhead:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
