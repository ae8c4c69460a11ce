"""The live demo's memory and speed, alone and beside a busy process (issue 27).

Runs README's `tts demo --live --n 3` (small + large model, vLLM on CPU) in a fresh process,
alternately on the machine as it is ("quiet") and beside one CPU-bound process this script
starts (`busy`: a Python busy loop), and measures for each run:

- the peak resident memory of the demo's whole process tree (RSS summed over the process
  and its descendants, sampled every 0.2 s, or the main process's own peak `ru_maxrss`
  when a spike fell between samples);
- generated tokens per second: every model's tokens over the time `solve_many` spent minus
  the engine loads it contains (the child wraps these two calls to time them; the demo
  itself is the CLI's, unchanged);
- the machine's load: 1-minute load average at start and end, and the cores the other
  processes used meanwhile (from /proc/stat; the busy loop counts as another process).

Writes bench/results/live/{runs.csv,summary.json,live.md,live.png}. `quiet` means only that
this script started nothing beside the demo: on a shared machine, read the load columns.

    python bench/live.py [--rounds 1] [--n 3] [--modes quiet busy]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

OUT = Path(__file__).parent / "results" / "live"
MARK = "LIVE-BENCH "


def child(n: int) -> None:
    """The demo through the CLI, with solve_many and engine loads timed."""
    from tts import cli
    from tts.backends.vllm import VLLMBackend
    from tts.engine import Engine

    record: dict = {"loads": {}, "tokens": {}, "threads": {}}
    build, solve_many = VLLMBackend._build, Engine.solve_many

    def timed_build(self):
        start = time.perf_counter()
        try:
            return build(self)
        finally:
            record["loads"][self.model] = time.perf_counter() - start

    def timed_solve_many(self, *args, **kwargs):
        start = time.perf_counter()
        results = solve_many(self, *args, **kwargs)
        record["solve_s"] = time.perf_counter() - start
        for r in results:
            for model, tokens in r.tokens.items():
                record["tokens"][model] = record["tokens"].get(model, 0) + tokens
        for backend in self.backends.values():
            record["threads"][backend.model] = getattr(backend, "settings", {}).get("threads")
        return results

    VLLMBackend._build = timed_build
    Engine.solve_many = timed_solve_many
    code = cli.main(["demo", "--live", "--n", str(n)])
    print(MARK + json.dumps(record), flush=True)
    sys.exit(code)


def tree_rss(root: int) -> int:
    """Resident bytes of `root` and its descendants now."""
    from tts.backends.watchdog import descendants

    total = 0
    for pid in (root, *descendants(root)):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def run(mode: str, n: int) -> dict:
    from tts.backends.cpu import read_times

    busy = None
    if mode == "busy":
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(1.0)
    try:
        load_start = os.getloadavg()[0]
        before = read_times()
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, __file__, "--child", str(n)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        peak = [0]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.2):
                peak[0] = max(peak[0], tree_rss(proc.pid))

        def drain(stream, sink: list) -> None:
            sink.append(stream.read())

        out_parts: list[str] = []
        err_parts: list[str] = []
        threads = [threading.Thread(target=sample, daemon=True),
                   threading.Thread(target=drain, args=(proc.stdout, out_parts), daemon=True),
                   threading.Thread(target=drain, args=(proc.stderr, err_parts), daemon=True)]
        for t in threads:
            t.start()
        # wait4, not Popen.wait: the rusage of this child alone (its peak and CPU time)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        done.set()
        for t in threads:
            t.join()
        out, err = "".join(out_parts), "".join(err_parts)
        wall = time.perf_counter() - start
        after = read_times()
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    lines = [ln for ln in out.splitlines() if ln.startswith(MARK)]
    if proc.returncode or not lines:
        raise SystemExit(f"{mode} demo failed (exit {proc.returncode}):\n{err[-3000:]}")
    rec = json.loads(lines[-1][len(MARK):])
    tokens = sum(rec["tokens"].values())
    gen_s = rec["solve_s"] - sum(rec["loads"].values())
    per_core = (after.total - before.total) / after.cores
    # the sampled tree peak can miss a short spike the kernel's own peak of the main process
    # (ru_maxrss) saw: report the larger
    tree_peak = max(peak[0], usage.ru_maxrss * 1024)
    return {"mode": mode, "wall_s": round(wall, 1), "peak_rss_gb": round(tree_peak / 1e9, 2),
            "max_process_rss_gb": round(usage.ru_maxrss * 1024 / 1e9, 2),
            "tokens": tokens, "generate_s": round(gen_s, 1),
            "tokens_per_s": round(tokens / gen_s, 1),
            "loads_s": "; ".join(f"{m} {s:.0f}" for m, s in rec["loads"].items()),
            "threads": "; ".join(f"{m} {t}" for m, t in rec["threads"].items()),
            "load_avg_start": round(load_start, 2), "load_avg_end": round(os.getloadavg()[0], 2),
            "machine_busy_cores": round((after.busy - before.busy) / per_core, 2),
            "demo_cores": round((usage.ru_utime + usage.ru_stime) / wall, 2),
            "demo_output": out.split(MARK)[0].strip()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--n", type=int, default=3)
    parser.add_argument("--modes", nargs="+", default=["quiet", "busy"],
                        choices=["quiet", "busy"])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    rows = []
    for rnd in range(args.rounds):
        for mode in args.modes:
            print(f"round {rnd}, {mode}: running tts demo --live --n {args.n} ...", flush=True)
            row = {"round": rnd, **run(mode, args.n)}
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "demo_output"}), flush=True)
    write(rows, args)


def write(rows: list[dict], args: argparse.Namespace) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    fields = [k for k in rows[0] if k != "demo_output"]
    with (OUT / "runs.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)

    def median(mode: str, key: str) -> float | None:
        values = [r[key] for r in rows if r["mode"] == mode]
        return round(statistics.median(values), 2) if values else None

    quiet, busy = median("quiet", "tokens_per_s"), median("busy", "tokens_per_s")
    summary = {
        "command": f"tts demo --live --n {args.n}",
        "peak_rss_gb": max(r["peak_rss_gb"] for r in rows),
        "quiet_tokens_per_s": quiet, "busy_tokens_per_s": busy,
        "busy_over_quiet": round(busy / quiet, 3) if quiet and busy else None,
        "quiet_wall_s": median("quiet", "wall_s"), "busy_wall_s": median("busy", "wall_s"),
        "load_avg": {r["mode"] + f"_{r['round']}": [r["load_avg_start"], r["load_avg_end"]]
                     for r in rows},
        "cpus": os.cpu_count(), "cpu_model": _cpu_model(), "runs": len(rows),
        "note": "quiet = nothing started beside the demo by this script; other processes "
                "on the machine are in load_avg and runs.csv (machine_busy_cores)",
    }
    (OUT / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [f"# Live demo: memory and speed, alone and beside a busy process "
             f"({os.cpu_count()} CPUs, {_cpu_model()})", "",
             f"`python bench/live.py --rounds {args.rounds} --n {args.n}`: `tts demo --live "
             f"--n {args.n}` (small + large model) in a fresh process per run; peak RSS "
             f"summed over the process tree; tokens/s of every model over the generation "
             f"time (engine loads excluded); `busy` = beside one Python busy loop; load "
             f"average (1 min) at start/end and the cores the whole machine used.", "",
             "| round | mode | wall s | peak RSS GB | tokens | tokens/s | threads | loads s "
             "| load avg | machine busy cores |", "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['round']} | {r['mode']} | {r['wall_s']} | {r['peak_rss_gb']} | "
              f"{r['tokens']} | {r['tokens_per_s']} | {r['threads']} | {r['loads_s']} | "
              f"{r['load_avg_start']}-{r['load_avg_end']} | {r['machine_busy_cores']} |"
              for r in rows]
    lines += ["", f"Peak RSS {summary['peak_rss_gb']} GB; busy/quiet tokens/s "
                  f"{summary['busy_over_quiet']} (target >= 0.4)."]
    (OUT / "live.md").write_text("\n".join(lines) + "\n")
    plot(rows)
    print("\n".join(lines))


def plot(rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(7, 3))
    labels = [f"{r['mode']} {r['round']}" for r in rows]
    a.bar(labels, [r["tokens_per_s"] for r in rows], color="tab:blue")
    a.set_ylabel("generated tokens / s")
    a.set_title("speed")
    b.bar(labels, [r["peak_rss_gb"] for r in rows], color="tab:orange")
    b.axhline(8, color="gray", linestyle="--", linewidth=1)
    b.set_ylabel("peak RSS of the process tree (GB)")
    b.set_title("memory (target 8 GB)")
    for ax in (a, b):
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    fig.tight_layout()
    fig.savefig(OUT / "live.png", dpi=100)
    plt.close(fig)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    main()
