"""Load test of `tts serve` on loopback: N concurrent requests through the real openai client.

Starts a real `tts serve` process (replay of the bundled bank by default; `--live` the tiny
model through vLLM), sends N requests at once (bounded: N <= 1000, each with a timeout, the
whole run with a deadline), and compares throughput with the same prompts through
`solve_many` in-process (replay: the same bank; live: the same model in this process, after
the server is stopped). Writes bench/results/serve_load/{serve_load[_live].csv, .png, .md}.
Last line: `errors=<n> ratio=<x> p95_s=<y>`.

    python bench/serve_load.py                 # replay, 200 requests
    python bench/serve_load.py --live --n 32 --budget 150
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.serve_util import ServeProcess  # noqa: E402

OUT = ROOT / "bench" / "results" / "serve_load"


async def fire(url: str, questions: list[str], budget: float | None, timeout: float,
               deadline: float, model: str = "tts-auto",
               max_tokens: int | None = None) -> list[dict]:
    import openai

    client = openai.AsyncOpenAI(base_url=url, api_key="none", max_retries=0, timeout=timeout)

    async def one(i: int, q: str) -> dict:
        start = time.perf_counter()
        try:
            extra = {"max_tokens": max_tokens} if max_tokens else {}
            r = await client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": q}],
                extra_body={"budget": budget} if budget else None, **extra)
            extra = r.model_extra["tts"]
            return {"i": i, "ok": 1, "seconds": time.perf_counter() - start,
                    "answer": extra["answer"] or "", "status": extra["status"],
                    "cost": extra["cost"], "error": ""}
        except Exception as exc:  # every failure is counted, never retried
            return {"i": i, "ok": 0, "seconds": time.perf_counter() - start, "answer": "",
                    "status": "error", "cost": 0.0, "error": f"{type(exc).__name__}: {exc}"}

    try:
        return await asyncio.wait_for(
            asyncio.gather(*(one(i, q) for i, q in enumerate(questions))), deadline)
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
    ap.add_argument("--timeout", type=float, default=None, help="seconds per request")
    ap.add_argument("--deadline", type=float, default=None, help="seconds for the whole run")
    args = ap.parse_args(argv)
    if not 1 <= args.n <= 1000:
        ap.error("--n must be in 1..1000")
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
        # two single requests before the load (the first also warms up HTTP): neither may
        # reload a model, so both take about the same time, far below the start-up
        singles = [asyncio.run(fire(server.url, questions[k:k + 1], budget, timeout,
                                    deadline, args.model, max_tokens))[0]["seconds"]
                   for k in (0, 1)]
        start = time.perf_counter()
        rows = asyncio.run(fire(server.url, questions, budget, timeout, deadline, args.model,
                                max_tokens))
        serve_s = time.perf_counter() - start
    if args.live:
        from tts.backends.vllm import VLLMBackend
        from tts.budgets import QWEN_PARAMS

        engine = tts.Engine(VLLMBackend("tiny").load(), cost=QWEN_PARAMS, seed=0)
    else:
        engine = tts.replay_engine()
    strategy = None
    if direct:  # what the server runs for a model by name (tts.serving.app.App._direct)
        from tts.strategies import Vote

        role = {b.model: r for r, b in engine.backends.items()}[args.model]
        strategy = Vote(max_samples=1, wave=1, max_tokens=max_tokens, temperature=0.7,
                        confidence=1.0, role=role)
        budget = max_tokens * engine.cost.of(args.model).output
    engine.solve_many(questions[:1], budget, strategy=strategy)
    start = time.perf_counter()
    refs = engine.solve_many(questions, budget, strategy=strategy)
    direct_s = time.perf_counter() - start
    errors = sum(1 - r["ok"] for r in rows)
    same = sum(r["ok"] and r["answer"] == (x.answer or "") for r, x in zip(rows, refs))
    lat = [r["seconds"] for r in rows if r["ok"]] or [float("nan")]
    p50, p95 = percentile(lat, 0.5), percentile(lat, 0.95)
    serve_tp, direct_tp = args.n / serve_s, args.n / direct_s
    ratio = serve_tp / direct_tp

    with open(OUT / f"{tag}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
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
    b.bar(["tts serve", "solve_many"], [serve_tp, direct_tp], color=["tab:blue", "tab:gray"])
    b.set_ylabel("requests / s")
    b.set_title(f"throughput ratio {ratio:.2f}")
    fig.tight_layout()
    fig.savefig(OUT / f"{tag}.png", dpi=110)
    cmd = "python bench/serve_load.py" + (" --live" if args.live else "") + f" --n {args.n}" + (
        f" --model {args.model} --max-tokens {max_tokens}" if direct else
        (f" --budget {budget:g}" if args.budget else ""))
    (OUT / f"{tag}.md").write_text(
        f"# tts serve load test ({'live tiny model, vLLM CPU' if args.live else 'replay'})\n\n"
        f"Command: `{cmd}` (2-core CPU, loopback; client, server and engine share the cores)."
        f"\n\n| measure | value |\n|---|---|\n"
        f"| concurrent requests | {args.n} |\n| model | {args.model} |\n"
        f"| budget per request | {budget:g} |\n"
        f"| errors | {errors} |\n| answers equal to solve_many | {same}/{args.n} |\n"
        f"| p50 latency | {p50:.3f} s |\n| p95 latency | {p95:.3f} s |\n"
        f"| wall time, served | {serve_s:.2f} s |\n| wall time, solve_many | {direct_s:.2f} s |\n"
        f"| throughput served / solve_many | {serve_tp:.1f} / {direct_tp:.1f} req/s |\n"
        f"| ratio | {ratio:.2f} |\n| server ready (start-up, model load) | {ready:.1f} s |\n"
        f"| first / second single request after start-up | {singles[0]:.2f} s / "
        f"{singles[1]:.2f} s |\n\n"
        f"![latency and throughput]({tag}.png)\n")
    print(f"single requests after start-up: {singles[0]:.2f} s, {singles[1]:.2f} s (no reload)")
    print(f"server ready in {ready:.1f} s; served {args.n} in {serve_s:.2f} s, solve_many "
          f"{direct_s:.2f} s; answers equal {same}/{args.n}; p50 {p50:.3f} s")
    for r in rows:
        if not r["ok"]:
            print("error:", r["error"][:200])
            break
    print(f"errors={errors} ratio={ratio:.3f} p95_s={p95:.3f}")
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
