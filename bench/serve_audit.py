"""Do audits delay served answers? `tts serve` with and without `--audit-rate`, side by side.

Starts two real `tts serve` processes over the bundled bank (replay), one auditing a share
`--rate` of the answers given below the top model (GPT-4), one not, and sends the same N
concurrent requests to each in alternating rounds (the order flips every round, so drift in
what else runs on the machine hits both alike). Per round: p50/p95 latency of each; the
answers and their costs must be equal (audits run off the request's path and budget). After
the rounds, the auditing server's GET /v1/tts/audit gives the audits made and the
disagreement measured. Writes bench/results/serve_audit/{serve_audit.csv, .png, .md,
summary.json}; last line `p95_ratio=<on/off> audits=<n> errors=<n>`.

    python bench/serve_audit.py                       # 200 requests, 11 rounds, rate 0.05
    python bench/serve_audit.py --rate 1 --rounds 5   # every answer below GPT-4 audited
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.serve_load import Clients, cpu_seconds, fire, percentile  # noqa: E402
from tests.serve_util import ServeProcess  # noqa: E402

OUT = ROOT / "bench" / "results" / "serve_audit"


async def rounds(urls: dict[str, str], pids: dict[str, int], questions: list[str],
                 budget: float, n_rounds: int, clients: int
                 ) -> list[tuple[int, str, list[dict], float]]:
    """`n_rounds` rounds, each firing all `questions` at both servers one after the other
    (order flipped every round); one (round, server, rows, server CPU seconds) per server and
    round (CPU time, unlike wall time, does not grow when other jobs share the cores; the
    audits a round starts may finish in the next)."""
    pools = {name: Clients(url, 60.0, len(questions), clients) for name, url in urls.items()}
    try:
        for name in urls:  # warm the connection pools and the servers
            await fire(pools[name], questions, budget, 120.0)
        out = []
        for k in range(n_rounds):
            order = list(urls) if k % 2 == 0 else list(urls)[::-1]
            for name in order:
                cpu = cpu_seconds(pids[name])
                rows = await fire(pools[name], questions, budget, 120.0)
                out.append((k, name, rows, cpu_seconds(pids[name]) - cpu))
        return out
    finally:
        for pool in pools.values():
            await pool.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="concurrent requests per round")
    ap.add_argument("--rounds", type=int, default=11, help="rounds per server (medians)")
    ap.add_argument("--rate", type=float, default=0.05, help="audit rate of the audited server")
    ap.add_argument("--budget", type=float, default=8000.0,
                    help="budget per request (8000: the default policy answers with "
                         "Llama-2-13B votes, below GPT-4, so answers can be audited)")
    ap.add_argument("--clients", type=int, default=8, help="openai clients (pools) per server")
    args = ap.parse_args(argv)
    if not 1 <= args.n <= 1000 or not 1 <= args.rounds <= 50 or not 0 < args.rate <= 1:
        ap.error("--n must be in 1..1000, --rounds in 1..50, --rate in (0, 1]")
    import httpx

    import tts

    problems = list(tts._load(str(tts.BUNDLED_BANK)).problems.values())
    questions = [problems[i % len(problems)].question for i in range(args.n)]
    logs = Path(tempfile.gettempdir())
    with ServeProcess(log=logs / "tts_serve_audit_off.log") as off, \
            ServeProcess("--audit-rate", f"{args.rate:g}", log=logs / "tts_serve_audit_on.log"
                         ) as on:
        runs = asyncio.run(rounds({"off": off.url, "on": on.url},
                                  {"off": off.process.pid, "on": on.process.pid}, questions,
                                  args.budget, args.rounds, args.clients))
        audit_url = f"http://127.0.0.1:{on.port}/v1/tts/audit"
        deadline = time.monotonic() + 60
        while (audit := httpx.get(audit_url).json())["pending"] and \
                time.monotonic() < deadline:
            time.sleep(0.05)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    errors = sum(1 - r["ok"] for _, _, rows, _ in runs for r in rows)
    p95 = {name: [percentile([r["seconds"] for r in rows if r["ok"]] or [float("nan")], 0.95)
                  for _, s, rows, _ in runs if s == name] for name in ("off", "on")}
    p50 = {name: [percentile([r["seconds"] for r in rows if r["ok"]] or [float("nan")], 0.5)
                  for _, s, rows, _ in runs if s == name] for name in ("off", "on")}
    by = {(k, s): rows for k, s, rows, _ in runs}
    cpu_ms = {name: statistics.median(c for _, s, _, c in runs if s == name) * 1000 / args.n
              for name in ("off", "on")}
    same = all([(r["answer"], r["cost"]) for r in by[(k, "on")]] ==
               [(r["answer"], r["cost"]) for r in by[(k, "off")]] for k in range(args.rounds))
    med = {name: statistics.median(v) for name, v in p95.items()}
    ratio = med["on"] / med["off"]
    overall = audit["disagreement"]["overall"]

    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "serve_audit.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["round", "server", "i", "ok", "seconds", "status", "cost", "answer"])
        for k, name, rows, _ in runs:
            for r in rows:
                w.writerow([k, name, r["i"], r["ok"], f"{r['seconds']:.6f}", r["status"],
                            r["cost"], r["answer"]])
    summary = {"n": args.n, "rounds": args.rounds, "audit_rate": args.rate,
               "budget": args.budget, "p95_s_off": med["off"], "p95_s_on": med["on"],
               "p95_ratio": ratio, "p50_s_off": statistics.median(p50["off"]),
               "p50_s_on": statistics.median(p50["on"]), "answers_and_costs_equal": same,
               "errors": errors, "audits": overall["audited"],
               "offered": audit["offered"], "dropped": audit["dropped"],
               "disagreement": overall["rate"], "disagreement_ci": [overall["low"],
                                                                    overall["high"]],
               "audit_spent_units": audit["ledger"]["spent"], "load_average_1min": load,
               "server_cpu_ms_per_request_off": cpu_ms["off"],
               "server_cpu_ms_per_request_on": cpu_ms["on"]}
    (OUT / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for name, color in (("off", "tab:gray"), ("on", "tab:blue")):
        ax.plot(range(args.rounds), p95[name], "o-", color=color,
                label=f"audits {'off' if name == 'off' else f'at {args.rate:g}'}: median "
                      f"{med[name]:.3f} s")
    ax.set_xlabel("round")
    ax.set_ylabel("p95 latency (s)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"{args.n} concurrent requests per round: p95 ratio on/off {ratio:.3f}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(OUT / "serve_audit.png", dpi=110)
    plt.close(fig)
    cmd = f"python bench/serve_audit.py --n {args.n} --rounds {args.rounds} --rate {args.rate:g}"
    ci = f"[{overall['low']:.2f}, {overall['high']:.2f}]"
    rate = "n/a" if overall["rate"] is None else f"{overall['rate']:.2f}"
    (OUT / "serve_audit.md").write_text(
        f"# Audits and served latency (replay)\n\nCommand: `{cmd}` (2-core CPU, loopback; "
        f"both servers, the clients and whatever else runs share the cores: load average "
        f"{load:.1f} at the end; rounds alternate between the servers, medians over rounds; "
        f"p95 per round varies by tens of percent on a loaded machine, see the plot).\n\n"
        f"| measure | audits off | audits at {args.rate:g} |\n|---|---|---|\n"
        f"| p50 latency | {summary['p50_s_off']:.3f} s | {summary['p50_s_on']:.3f} s |\n"
        f"| p95 latency | {med['off']:.3f} s | {med['on']:.3f} s |\n"
        f"| **p95 ratio on / off** | | **{ratio:.3f}** |\n"
        f"| server CPU per request | {cpu_ms['off']:.2f} ms | {cpu_ms['on']:.2f} ms |\n"
        f"| answers and costs equal in every round | {same} | |\n"
        f"| errors | {errors} (both) | |\n"
        f"| audits made / answers below GPT-4 offered | | {overall['audited']} / "
        f"{audit['offered']} (dropped {audit['dropped']}) |\n"
        f"| disagreement with GPT-4 (95% CI) | | {rate} {ci} |\n"
        f"| audit ledger (units, outside the requests' budgets) | | "
        f"{audit['ledger']['spent']:g} |\n\n![p95 per round](serve_audit.png)\n")
    print(json.dumps(summary))
    print(f"p95_ratio={ratio:.3f} audits={overall['audited']} errors={errors}")
    return 0 if errors == 0 and same else 1


if __name__ == "__main__":
    sys.exit(main())
