"""How fast replay runs: solve_many with the cascade over the 300 bundled dev questions.

Offline tuning evaluates thousands of policies; this is the engine path it stands on.
Writes bench/results/solve_speed/solve_speed.{csv,png,md}; last line problems_per_s=<x>.

    python bench/solve_speed.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from pathlib import Path

import tts
from tts.answers import is_correct

OUT = Path(__file__).parent / "results" / "solve_speed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--budget", type=float, default=200_000)
    args = parser.parse_args()
    engine = tts.replay_engine()
    bank = engine.backends["small"].bank
    problems = [bank.problems[p] for p in bank.problem_ids]
    engine.solve_many(problems[:5], args.budget, strategy="cascade")  # warm caches
    rows = []
    for rep in range(args.repeats):
        start = time.perf_counter()
        results = engine.solve_many(problems, args.budget, strategy="cascade")
        seconds = time.perf_counter() - start
        acc = sum(is_correct(r.answer, p.gold) for r, p in zip(results, problems)) / len(problems)
        rows.append({"repeat": rep, "problems": len(problems), "seconds": round(seconds, 4),
                     "problems_per_s": round(len(problems) / seconds, 1), "accuracy": acc,
                     "mean_cost": round(sum(r.cost for r in results) / len(results), 1)})
    OUT.mkdir(parents=True, exist_ok=True)
    with (OUT / "solve_speed.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar([str(r["repeat"]) for r in rows], [r["problems_per_s"] for r in rows])
    ax.set_xlabel("repeat")
    ax.set_ylabel("problems / s")
    ax.set_title("solve_many, cascade, 300 questions (replay)")
    fig.tight_layout()
    fig.savefig(OUT / "solve_speed.png", dpi=100)
    median = statistics.median(r["seconds"] for r in rows)
    (OUT / "solve_speed.md").write_text(
        "# solve_many speed (replay, cascade, 300 dev questions)\n\n"
        "`python bench/solve_speed.py`\n\n| repeat | seconds | problems/s | accuracy |\n"
        "|---|---|---|---|\n" + "".join(
            f"| {r['repeat']} | {r['seconds']} | {r['problems_per_s']} | {r['accuracy']:.3f} |\n"
            for r in rows) + f"\nmedian {median:.4f} s per 300 problems\n")
    for r in rows:
        print(f"repeat {r['repeat']}: {r['seconds']:.4f} s, accuracy {r['accuracy']:.3f}")
    print(f"problems_per_s={len(problems) / median:.0f}")


if __name__ == "__main__":
    main()
