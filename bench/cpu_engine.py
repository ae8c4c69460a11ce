"""How fast vLLM generates on this CPU with its engine core in a separate process or in ours.

vLLM's CPU engine core runs in its own process by default and busy-polls the model worker;
vLLM reserves a core for it, so on a 2-core machine the model computes on one. tts builds CPU
engines in the calling process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`, tts.backends.vllm). This
measures the three ways side by side, in one run, each in a fresh process (the setting is
read when an engine starts), rounds interleaved so that drift hits all alike:

- `separate`: vLLM's default (engine-core process, one core reserved for it);
- `separate, no reserved core`: the same with `VLLM_CPU_NUM_OF_RESERVED_CPU=0`;
- `in-process`: tts's default on CPU.

Each run loads a model, warms it with one request, then times one batch of seeded samples
(bundled GSM8K questions, T=0.7, logprobs on, as a bank build asks). Writes
bench/results/cpu_engine/cpu_engine.{csv,png,md}.

    python bench/cpu_engine.py [--models small large] [--rounds 2] [--questions 8]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent))

from figures import finish  # noqa: E402

OUT = Path(__file__).parent / "results" / "cpu_engine"
CONFIGS = {
    "separate": {"VLLM_ENABLE_V1_MULTIPROCESSING": "1"},
    "separate, no reserved core": {"VLLM_ENABLE_V1_MULTIPROCESSING": "1",
                                   "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"},
    "in-process": {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"},
}
console = Console()


def child(model: str, questions: int, samples: int, max_tokens: int) -> None:
    """One measurement in this process, printed as a JSON line."""
    import tts
    from tts.backends.vllm import VLLMBackend
    from tts.bank import load_bank
    from tts.prompts import format_question
    from tts.types import GenRequest

    bank = load_bank(tts.BUNDLED_BANK)
    qs = [bank.problems[p].question for p in bank.problem_ids[:questions]]
    backend = VLLMBackend(model, max_model_len=2048)
    start = time.perf_counter()
    backend.load()
    load = time.perf_counter() - start
    requests = [GenRequest(prompt=format_question(q), n=samples, max_tokens=max_tokens,
                           temperature=0.7, seed=0, logprobs=True) for q in qs]
    backend.generate([GenRequest(prompt=format_question(qs[0]), n=2, max_tokens=16, seed=1)])
    start = time.perf_counter()
    out = backend.generate(requests)
    seconds = time.perf_counter() - start
    tokens = sum(c.tokens for cs in out for c in cs)
    print(json.dumps({"load_s": round(load, 1), "tokens": tokens, "seconds": round(seconds, 1),
                      "tokens_per_s": round(tokens / seconds, 1),
                      "engine_process": backend.settings["engine_process"]}), flush=True)
    backend.close()


def measure(config: str, model: str, args: argparse.Namespace) -> dict:
    knobs = {k for setting in CONFIGS.values() for k in setting}
    env = {k: v for k, v in os.environ.items() if k not in knobs}
    env.update(CONFIGS[config])
    cmd = [sys.executable, __file__, "--child", model, "--questions", str(args.questions),
           "--samples", str(args.samples), "--max-tokens", str(args.max_tokens)]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    lines = [ln for ln in run.stdout.splitlines() if ln.startswith("{")]
    if run.returncode or not lines:
        raise SystemExit(f"{config} / {model} failed (exit {run.returncode}):\n"
                         f"{run.stderr[-2000:]}")
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["small", "large"])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.questions, args.samples, args.max_tokens)
        return
    rows = []
    runs = [(r, m, c) for r in range(args.rounds) for m in args.models for c in CONFIGS]
    with console.status("") as status:
        for i, (rnd, model, config) in enumerate(runs, 1):
            status.update(f"[{i}/{len(runs)}] round {rnd}, {model}, {config}")
            got = measure(config, model, args)
            rows.append({"round": rnd, "model": model, "config": config, **got})
            console.print(f"round {rnd} {model:6s} {config:28s} {got['tokens_per_s']:6.1f} "
                          f"tok/s, load {got['load_s']:.1f} s", highlight=False)
    OUT.mkdir(parents=True, exist_ok=True)
    with (OUT / "cpu_engine.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    table = []
    for model in args.models:
        base = statistics.median(r["tokens_per_s"] for r in rows
                                 if r["model"] == model and r["config"] == "separate")
        for config in CONFIGS:
            mine = [r for r in rows if r["model"] == model and r["config"] == config]
            speed = statistics.median(r["tokens_per_s"] for r in mine)
            table.append({"model": model, "config": config, "tokens_per_s": speed,
                          "vs_separate": speed / base,
                          "load_s": statistics.median(r["load_s"] for r in mine)})
    plot(table, args.models)
    cpus = os.cpu_count()
    lines = [f"# vLLM on CPU: engine core in a separate process or in ours ({cpus} CPUs)", "",
             f"`python bench/cpu_engine.py --rounds {args.rounds} --questions {args.questions} "
             f"--samples {args.samples} --max-tokens {args.max_tokens}`; medians over "
             f"{args.rounds} interleaved rounds, one batch of {args.questions} x "
             f"{args.samples} seeded samples (T=0.7, up to {args.max_tokens} tokens, logprobs "
             f"on) per run, engine load and a warm-up request excluded.", "",
             "| model | engine core | tokens/s | vs separate | load s |", "|---|---|---|---|---|"]
    lines += [f"| {t['model']} | {t['config']} | {t['tokens_per_s']:.1f} | "
              f"{t['vs_separate']:.2f}x | {t['load_s']:.1f} |" for t in table]
    (OUT / "cpu_engine.md").write_text("\n".join(lines) + "\n")
    console.print("\n".join(lines), markup=False, highlight=False)


def plot(table: list[dict], models: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    width = 0.8 / len(CONFIGS)
    for j, config in enumerate(CONFIGS):
        ax.bar([i + j * width for i in range(len(models))],
               [t["tokens_per_s"] for m in models for t in table
                if t["model"] == m and t["config"] == config], width, label=config)
    ax.set_xticks([i + width for i in range(len(models))], models)
    finish(fig, ax, OUT / "cpu_engine.png", ylabel="generated tokens / s", dpi=100,
           title=f"vLLM on {os.cpu_count()} CPUs: where the engine core runs")


if __name__ == "__main__":
    main()
