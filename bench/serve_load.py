"""Load test of `tts serve` on loopback: N concurrent requests through the real openai client.

Starts a real `tts serve` process (replay of the bundled bank by default; `--live` the tiny
model through vLLM), sends N requests at once (bounded: N <= 1000, each with a timeout, each
round with a deadline) from one pool of N keep-alive connections (spread over `--clients`
openai clients), and compares throughput with the same prompts, budgets and strategy through
`solve_many` in-process (replay: the same bank; live: the same model in this process, after
the server is stopped). Each of `--repeat` rounds is preceded by N concurrent GET /v1/models
(no engine work): the floor any route has through this client and HTTP stack. Wall time and
CPU time (server process, client process, solve_many) are reported; CPU time per request
does not depend on what else runs on the machine. Writes
bench/results/serve_load/{serve_load[_live].csv, .png, .md}.
Last line: `errors=<n> ratio=<x> p95_s=<y>`.

    python bench/serve_load.py                 # replay, 200 requests, 5 rounds
    python bench/serve_load.py --live --n 200 --model smollm2-135m --max-tokens 64
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.serve_util import ServeProcess  # noqa: E402

OUT = ROOT / "bench" / "results" / "serve_load"


class Clients:
    """`k` AsyncOpenAI clients, each with its own keep-alive pool of n/k connections, used
    round-robin: n connections in all, so every request still has its own. One client with
    one pool of n connections spends O(n) per request in httpcore's pool bookkeeping (it
    polls every connection's socket), which on 2 cores costs more than the server."""

    def __init__(self, url: str, timeout: float, n: int, k: int):
        import httpx
        import openai

        k = max(1, min(k, n))
        per = -(-n // k)
        pool = httpx.Limits(max_connections=per, max_keepalive_connections=per)
        self.clients = [openai.AsyncOpenAI(
            base_url=url, api_key="none", max_retries=0, timeout=timeout,
            http_client=openai.DefaultAsyncHttpxClient(limits=pool, timeout=timeout))
            for _ in range(k)]

    def __getitem__(self, i: int):
        return self.clients[i % len(self.clients)]

    async def close(self) -> None:
        for c in self.clients:
            await c.close()


async def fire(clients: Clients, questions: list[str], budget: float | None, deadline: float,
               model: str = "tts-auto", max_tokens: int | None = None) -> list[dict]:
    """All `questions` at once; one row per request (errors counted, never retried)."""

    async def one(i: int, q: str) -> dict:
        start = time.perf_counter()
        try:
            extra = {"max_tokens": max_tokens} if max_tokens else {}
            r = await clients[i].chat.completions.create(
                model=model, messages=[{"role": "user", "content": q}],
                extra_body={"budget": budget} if budget else None, **extra)
            extra = r.model_extra["tts"]
            return {"i": i, "ok": 1, "seconds": time.perf_counter() - start,
                    "answer": extra["answer"] or "", "status": extra["status"],
                    "cost": extra["cost"], "error": ""}
        except Exception as exc:  # every failure is counted, never retried
            return {"i": i, "ok": 0, "seconds": time.perf_counter() - start, "answer": "",
                    "status": "error", "cost": 0.0, "error": f"{type(exc).__name__}: {exc}"}

    return await asyncio.wait_for(
        asyncio.gather(*(one(i, q) for i, q in enumerate(questions))), deadline)


async def trivial(clients: Clients, n: int, deadline: float) -> float:
    """Seconds for `n` concurrent GET /v1/models (no engine work): the floor of any route
    through the same clients, HTTP stack and server process at this concurrency."""
    start = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(clients[i].models.list() for i in range(n))),
                           deadline)
    return time.perf_counter() - start


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system, all threads) of process `pid` (Linux /proc), or of this
    process; unlike wall time it does not grow when other jobs share the cores."""
    if pid is None:
        return time.process_time()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


async def session(url: str, questions: list[str], budget: float | None, timeout: float,
                  deadline: float, model: str, max_tokens: int | None, repeat: int,
                  k: int, server_pid: int) -> dict:
    """Against a running server: two single requests (timed: no reload), then per repeat a
    trivial round (warms the pool, measures the floor) and the load round; wall and CPU
    seconds (server process, this client process) of each."""
    client = Clients(url, timeout, len(questions), k)
    try:
        singles = []
        for j in (0, 1):
            start = time.perf_counter()
            row = (await fire(client, questions[j:j + 1], budget, deadline, model,
                              max_tokens))[0]
            if not row["ok"]:
                raise RuntimeError(f"single request failed: {row['error']}")
            singles.append(time.perf_counter() - start)
        got: dict = {"singles": singles, "floors": [], "walls": [], "runs": [],
                     "cpu_floor": [], "cpu_serve": []}
        for _ in range(repeat):
            marks = (cpu_seconds(server_pid), cpu_seconds())
            got["floors"].append(await trivial(client, len(questions), deadline))
            mid = (cpu_seconds(server_pid), cpu_seconds())
            start = time.perf_counter()
            got["runs"].append(await fire(client, questions, budget, deadline, model,
                                          max_tokens))
            got["walls"].append(time.perf_counter() - start)
            end = (cpu_seconds(server_pid), cpu_seconds())
            got["cpu_floor"].append((mid[0] - marks[0], mid[1] - marks[1]))
            got["cpu_serve"].append((end[0] - mid[0], end[1] - mid[1]))
        return got
    finally:
        await client.close()


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(q * (len(s) - 1))))
    return s[k]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="concurrent requests (<= 1000)")
    ap.add_argument("--budget", type=float, default=None,
                    help="budget per request (default 100000 replay, 150 live)")
    ap.add_argument("--live", action="store_true", help="the tiny model through vLLM")
    ap.add_argument("--model", default="tts-auto",
                    help="model to ask: tts-auto (the policy, default) or a ladder model by "
                         "name (one sample of --max-tokens; budget derived by the server)")
    ap.add_argument("--max-tokens", type=int, default=64,
                    help="tokens per sample when --model names a ladder model")
    ap.add_argument("--repeat", type=int, default=None,
                    help="load rounds on each side; medians are reported (default 5 replay, "
                         "1 live)")
    ap.add_argument("--clients", type=int, default=8,
                    help="openai clients (connection pools) the requests are spread over")
    ap.add_argument("--timeout", type=float, default=None, help="seconds per request")
    ap.add_argument("--deadline", type=float, default=None, help="seconds per round")
    args = ap.parse_args(argv)
    if not 1 <= args.n <= 1000:
        ap.error("--n must be in 1..1000")
    repeat = args.repeat or (1 if args.live else 5)
    if not 1 <= repeat <= 20:
        ap.error("--repeat must be in 1..20")
    import tts

    direct = args.model != "tts-auto"
    budget = None if direct else (args.budget or (150.0 if args.live else 100_000.0))
    max_tokens = args.max_tokens if direct else None
    timeout = args.timeout or (1200.0 if args.live else 60.0)
    deadline = args.deadline or (3600.0 if args.live else 120.0)
    bank = tts._load(str(tts.BUNDLED_BANK))
    problems = list(bank.problems.values())
    questions = [problems[i % len(problems)].question for i in range(args.n)]
    OUT.mkdir(parents=True, exist_ok=True)
    tag = "serve_load_live" if args.live else "serve_load"
    server_args = ["--small", "tiny", "--large", "none"] if args.live else []
    server_args += ["--request-timeout", str(timeout)]
    with ServeProcess(*server_args, startup_timeout=900 if args.live else 60,
                      log=Path(tempfile.gettempdir()) / f"tts_{tag}_server.log") as server:
        ready = server.ready_seconds
        got = asyncio.run(session(server.url, questions, budget, timeout, deadline,
                                  args.model, max_tokens, repeat, args.clients,
                                  server.process.pid))
    load_served = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    singles, floors, walls, runs = got["singles"], got["floors"], got["walls"], got["runs"]
    if args.live:
        from tts.backends.vllm import VLLMBackend
        from tts.budgets import QWEN_PARAMS

        engine = tts.Engine(VLLMBackend("tiny").load(), cost=QWEN_PARAMS, seed=0)
    else:
        engine = tts.replay_engine()
    strategy = None
    if direct:  # what the server runs for a model by name (RequestParser._direct)
        from tts.strategies import Vote

        role = {b.model: r for r, b in engine.backends.items()}[args.model]
        strategy = Vote(max_samples=1, wave=1, max_tokens=max_tokens, temperature=0.7,
                        confidence=1.0, role=role)
        budget = max_tokens * engine.cost.of(args.model).output
    engine.solve_many(questions[:1], budget, strategy=strategy)  # warm-up, as the singles
    direct_walls, direct_cpu = [], []
    for _ in range(repeat):
        start, cpu = time.perf_counter(), cpu_seconds()
        refs = engine.solve_many(questions, budget, strategy=strategy)
        direct_walls.append(time.perf_counter() - start)
        direct_cpu.append(cpu_seconds() - cpu)
    serve_s, direct_s = statistics.median(walls), statistics.median(direct_walls)
    floor_s = statistics.median(floors)
    rows = runs[walls.index(sorted(walls)[(len(walls) - 1) // 2])]  # the median round
    errors = sum(1 - r["ok"] for run in runs for r in run)
    same = sum(r["ok"] and r["answer"] == (x.answer or "") for r, x in zip(rows, refs))
    lat = [r["seconds"] for r in rows if r["ok"]] or [float("nan")]
    p50, p95 = percentile(lat, 0.5), percentile(lat, 0.95)
    serve_tp, direct_tp, floor_tp = args.n / serve_s, args.n / direct_s, args.n / floor_s
    ratio = serve_tp / direct_tp
    ms = 1000 / args.n  # CPU seconds per round -> ms per request

    def cpu_ms(pairs: list[tuple[float, float]]) -> tuple[float, float]:
        return (statistics.median(p[0] for p in pairs) * ms,
                statistics.median(p[1] for p in pairs) * ms)

    floor_cpu, serve_cpu = cpu_ms(got["cpu_floor"]), cpu_ms(got["cpu_serve"])
    direct_ms = statistics.median(direct_cpu) * ms
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    with open(OUT / f"{tag}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["round", *rows[0]])
        w.writeheader()
        for k, run in enumerate(runs):
            w.writerows({"round": k, **r} for r in run)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    a.hist(lat, bins=30, color="tab:blue")
    a.axvline(p50, color="k", ls="--", label=f"p50 {p50:.3f} s")
    a.axvline(p95, color="tab:red", ls="--", label=f"p95 {p95:.3f} s")
    a.set_xlabel("latency (s)")
    a.set_ylabel("requests")
    a.legend()
    a.set_title(f"{args.n} concurrent requests ({'live tiny' if args.live else 'replay'})")
    labels = ["tts serve", "solve_many", "GET /v1/models\n(floor)"]
    b.bar(labels, [serve_tp, direct_tp, floor_tp], color=["tab:blue", "tab:gray", "tab:orange"])
    b.set_ylabel("requests / s")
    b.set_title(f"throughput ratio {ratio:.2f} (floor {floor_tp / direct_tp:.2f})")
    fig.tight_layout()
    fig.savefig(OUT / f"{tag}.png", dpi=110)
    cmd = "python bench/serve_load.py" + (" --live" if args.live else "") + f" --n {args.n}" + (
        f" --model {args.model} --max-tokens {max_tokens}" if direct else
        (f" --budget {budget:g}" if args.budget else "")) + \
        (f" --repeat {repeat}" if args.repeat else "")
    spread = (f"{min(args.n / w for w in walls):.1f}–{max(args.n / w for w in walls):.1f}"
              if repeat > 1 else f"{serve_tp:.1f}")
    (OUT / f"{tag}.md").write_text(
        f"# tts serve load test ({'live tiny model, vLLM CPU' if args.live else 'replay'})\n\n"
        f"Command: `{cmd}` (2-core CPU, loopback; client, server and engine share the cores; "
        f"{repeat} round(s) per side, medians"
        f"{'; CPU times exclude vLLM engine processes' if args.live else ''}).\n\n"
        f"| measure | value |\n|---|---|\n"
        f"| concurrent requests | {args.n} |\n| model | {args.model} |\n"
        f"| budget per request | {budget:g} |\n"
        f"| errors (all rounds) | {errors} |\n"
        f"| answers equal to solve_many | {same}/{args.n} |\n"
        f"| p50 latency | {p50:.3f} s |\n| p95 latency | {p95:.3f} s |\n"
        f"| wall time, served | {serve_s:.3f} s |\n| wall time, solve_many | {direct_s:.3f} s |"
        f"\n| throughput served (rounds) / solve_many | {serve_tp:.1f} ({spread}) / "
        f"{direct_tp:.1f} req/s |\n"
        f"| **ratio** served / solve_many | **{ratio:.2f}** |\n"
        f"| floor: {args.n} concurrent GET /v1/models, same clients | {floor_tp:.1f} req/s "
        f"(ratio {floor_tp / direct_tp:.2f}) |\n"
        f"| served / floor | {serve_tp / floor_tp:.2f} |\n"
        f"| CPU per request: solve_many | {direct_ms:.2f} ms |\n"
        f"| CPU per request served: server + client | {serve_cpu[0]:.2f} + {serve_cpu[1]:.2f}"
        f" ms |\n"
        f"| CPU per request, floor: server + client | {floor_cpu[0]:.2f} + "
        f"{floor_cpu[1]:.2f} ms |\n"
        f"| ceiling from CPU: this client alone, server free | {1000 / serve_cpu[1]:.0f} "
        f"req/s (ratio <= {1000 / serve_cpu[1] / direct_tp:.2f}) |\n"
        f"| load average (1 min) after served / after solve_many | {load_served:.1f} / "
        f"{load:.1f} |\n"
        f"| server ready (start-up, model load) | {ready:.1f} s |\n"
        f"| first / second single request after start-up | {singles[0]:.2f} s / "
        f"{singles[1]:.2f} s |\n\n"
        f"![latency and throughput]({tag}.png)\n")
    print(f"single requests after start-up: {singles[0]:.2f} s, {singles[1]:.2f} s (no reload)")
    print(f"server ready in {ready:.1f} s; served {args.n} in {serve_s:.3f} s, solve_many "
          f"{direct_s:.3f} s; answers equal {same}/{args.n}; p50 {p50:.3f} s")
    print(f"floor: {args.n} concurrent GET /v1/models in {floor_s:.3f} s = {floor_tp:.0f} "
          f"req/s (ratio {floor_tp / direct_tp:.3f}); served/floor {serve_tp / floor_tp:.2f}")
    print(f"CPU ms per request: solve_many {direct_ms:.2f}; served: server {serve_cpu[0]:.2f} "
          f"+ client {serve_cpu[1]:.2f}; floor: server {floor_cpu[0]:.2f} + client "
          f"{floor_cpu[1]:.2f}; load average {load_served:.1f} / {load:.1f}")
    for run in runs:
        for r in run:
            if not r["ok"]:
                print("error:", r["error"][:200])
                break
    print(f"errors={errors} ratio={ratio:.3f} p95_s={p95:.3f}")
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
