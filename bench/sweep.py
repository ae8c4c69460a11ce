"""Committed budget sweep on the bundled MoT GSM8K bank (Llama-2-13B + GPT-4, real samples).

    python bench/sweep.py                       # default policy, all 300 questions
    python bench/sweep.py --policy tuned.json   # a tuned policy, scored on its held-out split

Writes bench/results/mot_gsm8k/sweep.{csv,png,md} and prints the total time. Seeded: the same
command writes the same CSV. `--resume` continues an interrupted run from the CSV.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tts import BUNDLED_BANK  # noqa: E402
from tts.sweep import print_table, run_sweep  # noqa: E402

OUT = ROOT / "bench" / "results" / "mot_gsm8k"
BUDGETS = (512, 768, 1024, 1536, 2048, 3072, 4096, 8192, 32768, 122880, 125000, 131072, 262144,
           524288)
"""Units of one Llama-2-13B output token. Every strategy reserves 512 tokens per sample, so
512 pays one Llama sample, 512 * 20 = 10240 all twenty, and 512 * 240 = 122880 exactly one
GPT-4 call (a cascade needs that plus its vote: 125000 lets it escalate after a short vote,
131072 after any); 524288 pays four GPT-4 calls. Denser where plans change, sparse on the
plateau between the last Llama sample and the first GPT-4 call."""
SEEDS = 10
BOOTSTRAP = 200


def checks(result) -> list[str]:
    """What the committed sweep must show, measured (issue 5)."""
    lines = []
    votes = sorted((int(n.split("@")[1]), n) for n in result.fixed_names if n.startswith("vote@"))
    peaks = [float(np.nanmax(result.curve(n)["accuracy"])) for _, n in votes]
    rising = all(b >= a for a, b in zip(peaks, peaks[1:]))
    lines.append(f"vote@N peak accuracy rises with N: {'yes' if rising else 'NO'} ("
                 + ", ".join(f"{n} {p:.3f}" for (_, n), p in zip(votes, peaks)) + ").")
    if "escalate" in result.available_names:
        esc = float(np.nanmax(result.curve("escalate")["accuracy"]))
        lines.append(f"escalate (GPT-4 greedy) accuracy once a call fits: {esc:.3f}.")
    if "oracle" in result.available_names:
        worst = min(result.row(b, "oracle").accuracy - result.row(b, n).accuracy
                    for b in result.budgets for n in result.available_names if n != "oracle")
        lines.append(f"oracle >= every plan at every budget: {'yes' if worst >= 0 else 'NO'} "
                     f"(smallest margin {worst:.3f}).")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", type=Path, default=None, help="tuned policy JSON")
    ap.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {OUT})")
    ap.add_argument("--resume", action="store_true",
                    help="continue from the CSV in --out instead of starting over")
    args = ap.parse_args(argv)
    command = "python bench/sweep.py" + "".join(
        f" {flag} {shlex.quote(str(v))}" for flag, v in (("--policy", args.policy),)
        if v is not None)
    if args.out != OUT:
        command += f" --out {shlex.quote(str(args.out))}"
    start = time.perf_counter()
    result = run_sweep(BUNDLED_BANK, BUDGETS, policy=args.policy, seeds=SEEDS,
                       bootstrap=BOOTSTRAP, checkpoint=args.out / "sweep.csv",
                       resume=args.resume)
    paths = result.write(args.out, command=command)
    found = checks(result)
    with paths["md"].open("a", encoding="utf-8") as fh:
        fh.write("\n## Checks\n\n" + "".join(f"- {line}\n" for line in found))
    total = time.perf_counter() - start
    console = Console()
    print_table(result.report(), console)
    for line in found:
        console.print(line, highlight=False)
    console.print("wrote " + ", ".join(str(p.relative_to(ROOT)) if p.is_relative_to(ROOT)
                                       else str(p) for p in paths.values()), highlight=False)
    n_plans = len(result.available_names)
    console.print(f"total time {total:.2f} s ({n_plans} plans x {len(result.budgets)} budgets x "
                  f"{len(result.seeds)} seeds x {result.n_questions} questions, "
                  f"{result.bootstrap} bootstrap resamples)", highlight=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
