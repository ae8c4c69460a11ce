"""Traffic that shifts: a tuned policy deployed static, and audited + guarded, on a long stream
whose mix moves from groups it was tuned on to groups it was not -> bench/results/drift/.

    .venv/bin/python bench/drift.py [--streams date,mmlu,gsm8k_date,date_swapped]
                                    [--requests 5000]
                                    [--splits 3] [--runs 4] [--audit-rate 0.05]
                                    [--trials 100] [--fresh]

Per stream, the groups (DATE scenarios, a question's first sentence; MMLU subjects) are split
in two by a seeded shuffle, `--splits` times (split seeds 0, 1, ...): set A, set B
(`gsm8k_date`: A is GSM8K, B is DATE; `date_swapped`: split 0 of `date` the other way
round). The policy is tuned on set A alone with `tts.tuning.run_tune` (cost objective; MMLU:
accuracy within `MMLU_CAP` of the top model's cost; folds by group, prompt
tokens counted), which writes what it expects (disagreement with the top model,
cross-fitted), a frontier of safer plans and, with the embedding model pulled, the novelty
summary of set A's questions (`tts.novelty`) into its notes. The stream is
`--requests` questions drawn with replacement, the first half from A, the second from B (the
shift), each answered by the replay engine (real logged samples, `Engine.solve` with the
request's own seed) under three deployments:

* `static`: the tuned policy, no audits;
* `guarded`: the same with `Engine(audit_rate=, audit_guard=True)` (`tts.guard`): a share of
  the answers given below the top model also get the top model's greedy answer (the audit,
  charged to its own ledger and counted here), the drift alarms (audits; novelty of the
  prompts, label- and audit-free), and moves along the frontier;
* `top`: the top model alone (its greedy answer, the tuner's baseline), the reference.

Numbers (every one measured): accuracy vs gold over the post-shift half and the whole stream,
`post_shift_loss_vs_top` (the top model's post-shift accuracy minus the deployment's, as a
fraction: 0.01 = 1 point), `cost_share` (the deployment's cost, audits included, over the top
model alone's on the same requests), for `guarded` its audit rate (audits per request) and
`requests_to_alarm` (requests after the shift until the first alarm of either signal; null:
none) and each signal's (`requests_to_novelty_alarm`, `requests_to_audit_alarm`), alarms
raised before the shift (false alarms, in all and per signal), and the share of answers that
are not the top model's greedy answer before and after the shift (what the audits estimate,
here counted on every request). `--runs` repeats each split's stream with other draws and seeds; summary numbers
are means over every split and run (`requests_to_alarm`: median, null counting as never),
each split's beside them. Tuned policies and finished runs are kept in the output folder
(`--fresh` redoes them; the committed policies were tuned by the tuner of their day).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tts  # noqa: E402
from drift_render import write_outputs  # noqa: E402
from tts.answers.equivalence import equivalent, is_correct  # noqa: E402
from tts.backends.replay import ReplayBackend  # noqa: E402
from tts.bank import SampleBank, load_bank  # noqa: E402
from tts.engine import Engine  # noqa: E402
from tts.errors import BankError, ValidationError  # noqa: E402
from tts.evaluate import BankArrays  # noqa: E402
from tts.policy import load_policy, policy_expected, policy_frontier, single_level  # noqa: E402
from tts.tuning import run_tune  # noqa: E402
from tts.tuning.data import greedy_rung  # noqa: E402
from tts.tuning.folds import scenario  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "drift"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FOLDS = 5
BUDGET = 262144.0  # the DATE bench's budget (tune_date.py): one GPT-4 answer with its prompt
MMLU_CAP = 0.3


@dataclass
class Stream:
    """A bank, the ladder tuned and served, and each question's group."""

    name: str
    bank: SampleBank
    ladder: tuple[str, ...]
    group: Callable[[str], str]
    """problem id -> group."""
    note: str
    rungs: tuple[str, ...] | None = None
    """`run_tune`'s ladder entries when they are not the plain model names (model:mode)."""
    fixed_a: tuple[str, ...] | None = None
    """The groups of set A when the split is fixed (one split), else None (shuffled)."""
    tune: dict[str, Any] = field(default_factory=lambda: {"objective": "cost"})
    """`run_tune`'s objective settings for set A."""
    max_splits: int | None = None
    """At most this many splits (None: `--splits`)."""
    max_trials: int | None = None
    """At most this many trials per study (None: `--trials`)."""


def date_stream() -> Stream:
    bank = load_bank(tts.BUNDLED_DATE_BANK)
    return Stream("date", bank, ("gpt-3.5-turbo", "gpt-4"),
                  lambda pid: scenario(bank.problems[pid].question),
                  "bundled MoT DATE bank; groups: scenarios (a question's first sentence)")


def date_swapped_stream() -> Stream:
    """DATE with split 0's sets swapped: tuned on its set B, streamed B then A."""
    stream = date_stream()
    a, _ = split_groups(stream, 0)
    in_b = {stream.group(p) for p in a}
    return replace(stream, name="date_swapped",
                   fixed_a=tuple(sorted({stream.group(p) for p in stream.bank.problems} - in_b)),
                   note=stream.note + "; split 0 of `date` with A and B swapped")


def mmlu_stream(tmp: Path) -> Stream | str:
    src = DATA / "routellm_mmlu"
    if not src.is_dir():
        return f"no RouteLLM MMLU logs at {src}"
    from tts.routellm import group_of, import_routellm

    bank = load_bank(import_routellm(src, tmp / "routellm_mmlu"))
    ladder = tuple(bank.meta.ladder or ())
    return Stream("mmlu", bank, ladder, group_of,
                  f"RouteLLM MMLU logs (tts bank import-routellm): one greedy answer per model, "
                  f"so the ladder's rungs are greedy answers; groups: subjects; no plan below "
                  f"the top model matches its accuracy (the cost objective deploys it alone), "
                  f"so set A is tuned for accuracy within {MMLU_CAP:g} of its cost; one split "
                  f"and 30 trials per study (each set holds ~5,000 questions)",
                  rungs=tuple(f"{m}:greedy" for m in ladder),
                  tune={"objective": "accuracy", "max_cost_share": MMLU_CAP},
                  max_splits=1, max_trials=30)


def gsm8k_date_stream(tmp: Path) -> Stream | str:
    """The bundled GSM8K and DATE banks in one, on the models they share."""
    gsm, date = load_bank(tts.BUNDLED_BANK), load_bank(tts.BUNDLED_DATE_BANK)
    ladder = tuple(m for m in gsm.meta.models_cheapest_first
                   if m in date.meta.models_cheapest_first)
    if len(ladder) < 2:
        return f"GSM8K {gsm.meta.models_cheapest_first} and DATE " \
               f"{date.meta.models_cheapest_first} share fewer than two models: no ladder"
    meta = replace(gsm.meta, name="mot_gsm8k+mot_date", roles={"small": ladder[0],
                                                                "large": ladder[-1]},
                   ladder=ladder, notes="the bundled GSM8K and DATE banks in one (bench/drift.py)",
                   modes={m: {**date.meta.modes.get(m, {}), **gsm.meta.modes.get(m, {})}
                          for m in ladder})
    bank = SampleBank(meta)
    for src in (gsm, date):
        for problem in src.problems.values():
            bank.add_problem(problem)
        for (_, model, _), record in src.records.items():
            if model in ladder:
                bank.add_record(record)
    return Stream("gsm8k_date", bank, ladder,
                  lambda pid: "gsm8k" if pid in gsm.problems else "date",
                  f"bundled GSM8K then bundled DATE, ladder {list(ladder)} (the models both banks "
                  f"hold); {ladder[0]}'s 'sample' is program of thought on GSM8K, chain of "
                  f"thought on DATE; one split: A = GSM8K, B = DATE",
                  fixed_a=("gsm8k",))


STREAMS = {"date": lambda tmp: date_stream(), "mmlu": mmlu_stream,
           "gsm8k_date": gsm8k_date_stream, "date_swapped": lambda tmp: date_swapped_stream()}


# ---- tuning on set A ---------------------------------------------------------------------------
def split_groups(stream: Stream, seed: int = 0) -> tuple[list[str], list[str]]:
    """Set A and set B of the stream's question ids, whole groups each (seeded shuffle)."""
    groups = sorted({stream.group(pid) for pid in stream.bank.problems})
    order = np.random.default_rng(seed).permutation(len(groups))
    in_a = set(stream.fixed_a) if stream.fixed_a else \
        {groups[i] for i in order[:(len(groups) + 1) // 2]}
    ids = sorted(stream.bank.problems)
    return [p for p in ids if stream.group(p) in in_a], [p for p in ids
                                                        if stream.group(p) not in in_a]


def tuned_policy(stream: Stream, ids_a: list[str], out: Path, trials: int, fresh: bool,
                 name: str):
    """The policy tuned on set A (cached in `out` as NAME_policy.json), and the tune's
    report."""
    path, report_path = out / f"{name}_policy.json", out / f"{name}_tune.json"
    if path.exists() and report_path.exists() and not fresh:
        return load_policy(path), json.loads(report_path.read_text())
    arrays = BankArrays.from_bank(stream.bank, problem_ids=ids_a)
    groups = {p: stream.group(p) for p in ids_a}
    t0 = time.perf_counter()  # folds hold groups out whole, unless A is too few groups
    got = run_tune(arrays, list(stream.rungs or stream.ladder), **stream.tune,
                   budgets=(BUDGET,), trials=trials, folds=FOLDS,
                   group_by=groups if len(set(groups.values())) >= FOLDS else "question",
                   count_prompt=True)
    got["policy"].to_json(path)
    report = {k: v for k, v in got["report"].items() if k not in ("trials_table",)}
    report["tune_seconds"] = round(time.perf_counter() - t0, 1)
    report_path.write_text(json.dumps(report, indent=1, default=float) + "\n")
    return load_policy(path), report


# ---- one run of the stream -----------------------------------------------------------------
def run_deployment(stream: Stream, policy: Any, questions: list[str], *, seed: int,
                   audit_rate: float = 0.0) -> dict[str, Any]:
    """Answer `questions` in order with the replay engine; per request: correct, cost, audit
    units spent so far, the plan in place; and the guard's events."""
    engine = Engine([ReplayBackend(stream.bank, m) for m in stream.ladder],
                    cost=stream.bank.meta.cost, policy=policy, count_prompt=True, seed=seed,
                    audit_rate=audit_rate,  # a policy without a frontier: the alarms only
                    audit_guard=audit_rate > 0 and bool(policy_frontier(policy)))
    if engine.guard is not None and engine.guard.novelty is not None:
        prime(engine.guard.novelty, [stream.bank.problems[p].question for p in set(questions)])
    correct, cost, audit, plan, disagree = [], [], [], [], []
    for i, pid in enumerate(questions):
        problem = stream.bank.problems[pid]
        r = engine.solve(problem, BUDGET, seed=seed * 1_000_003 + i)
        correct.append(is_correct(r.answer, problem.gold))
        top = stream.bank.record(pid, stream.ladder[-1], "greedy").samples[0].answer
        disagree.append(not equivalent(r.answer or "", top or ""))
        cost.append(r.cost)
        if engine.audits is not None:
            engine.audits.wait()
            audit.append(engine.audits.spent)
            plan.append(engine.guard.current)
    out = {"correct": correct, "cost": cost, "disagree": disagree}
    if engine.audits is not None:
        snap = engine.audits.snapshot()
        out.update(audit_spent=audit, plan=plan, events=engine.guard.events,
                   audits=snap["disagreement"]["overall"]["audited"] + snap["inconclusive"],
                   dropped=snap["dropped"], plans=list(engine.guard.names))
        engine.audits.close()
    return out


def prime(monitor: Any, texts: list[str]) -> None:
    """Give the novelty monitor the stream's embeddings ahead, from the prompts' embedding
    cache (what it would compute one prompt at a time, in one batch)."""
    from tts.routing.embeddings import embed_prompts

    monitor.prime(texts, embed_prompts(texts, monitor.encoder))


def top_policy(policy: Any) -> Any:
    """The top model alone on the policy's ladder: its greedy answer (the tuner's baseline;
    a frontier need not end with it)."""
    return single_level(policy.ladder, (greedy_rung("large", "greedy"),),
                        notes={"policy": "the top model alone"})


def one_run(stream: Stream, policy: Any, ids_a: list[str], ids_b: list[str], *, run: int,
            requests: int, audit_rate: float) -> dict[str, Any]:
    rng = np.random.default_rng(1000 + run)
    half = requests // 2
    questions = list(rng.choice(ids_a, half)) + list(rng.choice(ids_b, requests - half))
    top = top_policy(policy)
    t0 = time.perf_counter()
    runs = {"static": run_deployment(stream, policy, questions, seed=run),
            "guarded": run_deployment(stream, policy, questions, seed=run,
                                      audit_rate=audit_rate),
            "top": run_deployment(stream, top, questions, seed=run)}
    return {"run": run, "shift": half, "questions": questions, "deployments": runs,
            "seconds": round(time.perf_counter() - t0, 1)}


def measures(run: dict[str, Any]) -> dict[str, Any]:
    """The run's numbers per deployment (see the module docstring)."""
    shift, deps = run["shift"], run["deployments"]
    top_cost = float(np.sum(deps["top"]["cost"]))
    top_post = float(np.mean(deps["top"]["correct"][shift:]))
    out = {}
    for name, d in deps.items():
        audit = d["audit_spent"][-1] if "audit_spent" in d else 0.0
        m = {"accuracy": float(np.mean(d["correct"])),
             "post_shift_accuracy": float(np.mean(d["correct"][shift:])),
             "pre_shift_accuracy": float(np.mean(d["correct"][:shift])),
             "pre_shift_disagreement": float(np.mean(d["disagree"][:shift])),
             "post_shift_disagreement": float(np.mean(d["disagree"][shift:])),
             "post_shift_loss_vs_top": top_post - float(np.mean(d["correct"][shift:])),
             "cost_share": (float(np.sum(d["cost"])) + audit) / top_cost,
             "post_shift_cost_share": (float(np.sum(d["cost"][shift:])) + audit -
                                       (d["audit_spent"][shift - 1] if "audit_spent" in d
                                        else 0.0)) / float(np.sum(deps["top"]["cost"][shift:]))}
        if "audit_spent" in d:
            m.update(audit_rate=d["audits"] / len(d["correct"]), audit_cost_share=audit / top_cost,
                     **alarm_numbers(d["events"], shift),
                     moves=sum(e["event"] in ("safer", "cheaper") for e in d["events"]),
                     audits_dropped=d["dropped"])
        out[name] = m
    return out


ALARMS = {"audit": "alarm", "novelty": "novelty alarm"}
"""The guard's event of each alarm."""


def alarm_numbers(events: list[dict[str, Any]], shift: int) -> dict[str, Any]:
    """Requests after the shift until the first alarm (either; and each signal's: None when
    none came) and alarms raised before it (false alarms), from the guard's events."""
    out: dict[str, Any] = {}
    first = []
    for signal, kind in ALARMS.items():
        at = [e["request"] for e in events if e["event"] == kind]
        after = [a - shift for a in at if a > shift]
        out[f"requests_to_{signal}_alarm"] = after[0] if after else None
        out[f"false_{signal}_alarms"] = sum(a <= shift for a in at)
        first += after[:1]
    out["requests_to_alarm"] = min(first) if first else None
    out["false_alarms"] = out["false_audit_alarms"] + out["false_novelty_alarms"]
    out["safer_moves_on_novelty"] = sum(e["event"] == "safer" and e.get("signal") == "novelty"
                                        for e in events)
    return out


def summarise(per_run: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over runs (requests_to_alarm: median, never = infinite), and every run's."""
    out: dict[str, Any] = {}
    for name in ("guarded", "static", "top"):
        ms = [m[name] for m in per_run]
        agg = {k: float(np.mean([m[k] for m in ms])) for k in ms[0]
               if not k.startswith("requests_to_")}
        if name == "guarded":
            for key in ("requests_to_alarm", "requests_to_novelty_alarm",
                        "requests_to_audit_alarm"):
                waits = [m[key] for m in ms]
                med = statistics.median([np.inf if w is None else w for w in waits])
                agg[key] = None if med == np.inf else float(med)
                agg[f"{key}_runs"] = waits
        out[name] = agg
    return out


def run_stream(stream: Stream, args: argparse.Namespace) -> tuple[dict[str, Any], list]:
    """Every split (tuned on its set A) and run of one stream: the summary entry and runs."""
    cache = args.out / "runs"
    cache.mkdir(parents=True, exist_ok=True)
    per_run, curves, splits = [], [], []
    count = 1 if stream.fixed_a else min(args.splits, stream.max_splits or args.splits)
    for split in range(count):
        ids_a, ids_b = split_groups(stream, split)
        policy, tune = tuned_policy(stream, ids_a, args.out,
                                    min(args.trials, stream.max_trials or args.trials),
                                    args.fresh, f"{stream.name}_split{split}")
        expected = policy_expected(policy)
        novelty = policy.notes.get("novelty")
        mine = []
        for run in range(args.runs):
            path = cache / f"{stream.name}-split{split}-run{run}-{args.requests}-" \
                           f"{args.audit_rate:g}.json"
            if path.exists() and not args.fresh:
                got = json.loads(path.read_text())
            else:
                got = one_run(stream, policy, ids_a, ids_b, run=run, requests=args.requests,
                              audit_rate=args.audit_rate)
                got["split"] = split
                path.write_text(json.dumps(got, default=float))
            mine.append(measures(got))
            curves.append(got)
            print(f"{stream.name} split {split} run {run}: "
                  f"{json.dumps(mine[-1]['guarded'], default=float)}", file=sys.stderr)
        per_run += mine
        splits.append({
            "split": split, **summarise(mine),
            "groups": {"a": sorted({stream.group(p) for p in ids_a}),
                       "b": sorted({stream.group(p) for p in ids_b})},
            "questions": {"a": len(ids_a), "b": len(ids_b)},
            "expected_disagreement": expected["disagreement"], "expected": expected,
            "novelty": None if novelty is None else {
                k: novelty[k] for k in ("model_id", "threshold", "expected", "heldout_share",
                                        "questions")} | {"centroids": len(novelty["centroids"])},
            "frontier": [{"name": p.notes.get("frontier_plan"), **{k: e.get(k) for k in (
                "disagreement", "accuracy", "cost_share")}} for p, e in policy_frontier(policy)],
            "tune": {k: tune.get(k) for k in ("accuracy", "accuracy_ci95", "cost_share",
                                              "tune_seconds", "trials") if k in tune},
            "per_run": mine})
    entry = summarise(per_run)
    entry.update(note=stream.note, ladder=list(stream.ladder), requests=args.requests,
                 runs=args.runs, splits=splits,
                 run_seconds=round(sum(c["seconds"] for c in curves), 1))
    return entry, curves


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", default="date,mmlu,gsm8k_date,date_swapped")
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--splits", type=int, default=3, help="splits of the groups into A and B")
    ap.add_argument("--audit-rate", type=float, default=0.05)
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--fresh", action="store_true")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {}
    curves: dict[str, Any] = {}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tts-drift-") as tmp:
        for name in [s.strip() for s in args.streams.split(",") if s.strip()]:
            make = STREAMS.get(name)
            stream = make(Path(tmp)) if make else f"unknown stream {name!r}"
            if isinstance(stream, str):
                summary[name] = {"skipped": stream}
                continue
            try:
                summary[name], curves[name] = run_stream(stream, args)
            except (BankError, ValidationError) as exc:  # e.g. the tuner refuses the bank
                summary[name] = {"skipped": f"not run, {type(exc).__name__} (tuning set A "
                                            f"with tts.tuning.run_tune): {exc}",
                                 "note": stream.note}
    summary["audit_rate_setting"] = args.audit_rate
    summary["invocation_seconds"] = round(time.perf_counter() - t0, 1)  # cached parts reused
    summary["command"] = "python bench/drift.py " + " ".join(sys.argv[1:])
    write_outputs(summary, curves, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
