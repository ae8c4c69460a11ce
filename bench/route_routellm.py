"""tts's prompt router on RouteLLM's own evaluation data, measured RouteLLM's way, held-out only
-> bench/results/routellm_mmlu/ and bench/results/routellm_gsm8k/.

    .venv/bin/python bench/route_routellm.py [--only mmlu|gsm8k] [--speed [route]] [--fresh]

Data: `../shared/data/routellm_{mmlu,gsm8k}` imported with `tts bank import-routellm`
(Mixtral-8x7B-Instruct = weak, gpt-4-1106-preview = strong; correctness as logged; RouteLLM's
contaminated prompts left out). Metrics as RouteLLM's `evals/evaluate.py`: 10 quantile
thresholds, PGR, APGR, CPT(50%), CPT(80%) (`tts.routing.metrics`), shares in [0, 1].

Routers, every score held-out (5 folds; each prompt scored by a fit that never saw it):
* `tts`: `tts.routing` on all-MiniLM-L6-v2 embeddings, prompt features and (from 2,000
  fitting prompts on) word TF-IDF: logistic, kNN, TF-IDF and feature-only models and blends
  (`tts.routing.default_candidates`) chosen per outer fold on 3 inner folds by APGR (nested);
  score P(strong) - P(weak).
* `random`: uniform scores, mean of 20 draws.
* `subject_mean` (MMLU): each subject's mean gain (strong right - weak right) in the fitting
  folds; subjects unseen in fitting get the overall mean.
* `tfidf`: TF-IDF (words and bigrams) + logistic regression per model.
Schemes: `by_question`, `by_subject` (MMLU: subjects never seen in fitting), `labels_1500`
(folds by question, each fit on 1,500 labelled prompts drawn from its fitting folds), plus a
learning curve. `--speed` times embedding 10,000 prompts (no cache) and routing one prompt
(`--speed route`: routing only).

Embeddings are cached per bank and model (`~/.cache/tts/embeddings/`), and each router's
held-out scores are kept beside them, so a rerun resumes; `--fresh` recomputes the scores.
Writes summary.json, curves.csv, routing.md, pgr.png (and learning.csv, speed.json).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tts.bank import load_bank
from tts.routellm import group_of, import_routellm
from tts.routing import (DEFAULT_CANDIDATES, WORD_CANDIDATES, Candidate, EmbeddingCache,
                         Router, bank_table, cross_fit, default_cache_dir, embed_texts,
                         fold_indices, load_encoder, random_curve, routing_curve)
from tts.routing.router import WORDS_FROM
from tts.routing.metrics import RoutingCurve

ROOT = Path(__file__).resolve().parent
DATA = ROOT.parent.parent / "shared" / "data"
SEED = 0
FOLDS = 5
SIZES = (250, 500, 1000, 1500, 3000)
GRID = [c.name for c in DEFAULT_CANDIDATES + WORD_CANDIDATES] + [WORDS_FROM]
"""The nested choice's grid (`tts.routing.default_candidates`): what the score cache is keyed by."""
# RouteLLM paper (arXiv 2406.18665), contaminated prompts removed: CPT(50%), CPT(80%), APGR.
PUBLISHED = {
    "mmlu": {"note": "RouteLLM paper, all 57 MMLU subjects; routers trained on Chatbot Arena "
                     "+ ~1,500 golden-labelled MMLU questions",
             "random": (50.07, 79.93, 0.500), "sw_ranking": (35.40, 71.55, 0.603),
             "causal_llm": (35.49, 70.31, 0.600), "matrix_factorization": (35.46, 71.40, 0.597),
             "bert": (41.30, 72.20, 0.572)},
    "gsm8k": {"note": "RouteLLM paper; best router trained on Arena + GPT-4-judged Nectar",
              "random": (50.00, 80.08, 0.497), "causal_llm": (33.64, 63.26, 0.622)},
}
TARGETS = {"mmlu": {"by_question": {"apgr": 0.72, "cpt50": 0.22}, "by_subject": {"apgr": 0.58},
                    "beat_baselines_by": 0.02},
           "gsm8k": {"by_question": {"apgr": 0.65}}}


@dataclass(frozen=True)
class Data:
    name: str
    texts: list[str]
    groups: list[str]
    labels: np.ndarray  # (n, 2): weak right, strong right
    tiers: tuple[str, ...]


def load(which: str, data_dir: Path) -> Data:
    src = data_dir / f"routellm_{which}"
    with tempfile.TemporaryDirectory(prefix="tts-routellm-") as tmp:
        bank = load_bank(import_routellm(src, Path(tmp) / f"routellm_{which}"))
    table = bank_table(bank)
    return Data(bank.meta.name, list(table.texts), [group_of(i) for i in table.ids],
                table.labels, table.tiers)


def curve(scores: np.ndarray, d: Data) -> RoutingCurve:
    return routing_curve(scores, d.labels[:, 0], d.labels[:, 1])


def apgr_select(pred: np.ndarray, labels: np.ndarray) -> float:
    """Inner-fold selection score of the nested choice: APGR of P(strong) - P(weak)."""
    return routing_curve(pred[:, 1] - pred[:, 0], labels[:, 0], labels[:, 1]).apgr


# ---- routers ----------------------------------------------------------------------------------
def tts_scores(d: Data, emb: np.ndarray, embed_model: str, groups: list[str] | None,
               train_size: int | None, progress) -> tuple[np.ndarray, list[str]]:
    fit = cross_fit(d.texts, d.labels, emb, tiers=d.tiers, embed_model=embed_model,
                    folds=FOLDS, groups=groups, seed=SEED,
                    train_size=train_size, select=apgr_select, progress=progress)
    inner = {name: float(np.mean([sc[name] for sc in fit.inner_scores if name in sc]))
             for name in dict.fromkeys(n for sc in fit.inner_scores for n in sc)}
    return fit.predictions[:, 1] - fit.predictions[:, 0], {"chosen": list(fit.chosen),
                                                            "inner_apgr": inner}


def subject_mean_scores(d: Data, folds: list[np.ndarray]) -> np.ndarray:
    gain = d.labels[:, 1].astype(float) - d.labels[:, 0]
    groups = np.array(d.groups)
    out = np.zeros(len(gain))
    for held in folds:
        fit = np.setdiff1d(np.arange(len(gain)), held)
        overall = gain[fit].mean()
        for g in np.unique(groups[held]):
            rows = held[groups[held] == g]
            seen = fit[groups[fit] == g]
            out[rows] = gain[seen].mean() if len(seen) else overall
    return out


def tfidf_scores(d: Data, folds: list[np.ndarray], train_size: int | None) -> np.ndarray:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    out = np.zeros(len(d.texts))
    rng = np.random.default_rng(SEED + 1)
    for held in folds:
        fit = np.setdiff1d(np.arange(len(d.texts)), held)
        if train_size is not None:
            fit = np.sort(rng.choice(fit, train_size, replace=False))
        vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
        x = vec.fit_transform([d.texts[i] for i in fit])
        xh = vec.transform([d.texts[i] for i in held])
        p = [LogisticRegression(C=1.0, max_iter=2000).fit(x, d.labels[fit, t])
             .predict_proba(xh)[:, 1] for t in (0, 1)]
        out[held] = p[1] - p[0]
    return out


# ---- persistence of held-out scores -----------------------------------------------------------
class Parts:
    """Held-out scores per (scheme, router), kept next to the embeddings cache."""

    def __init__(self, d: Data, fresh: bool):
        key = hashlib.sha256(json.dumps([len(d.texts), FOLDS, SEED, SIZES, GRID, d.tiers])
                             .encode()).hexdigest()[:12]
        self.folder = default_cache_dir(d.name) / f"bench-{key}"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.fresh = fresh

    def get(self, name: str, compute):
        path = self.folder / f"{name}.json"
        if path.is_file() and not self.fresh:
            data = json.loads(path.read_text())
            return np.array(data["scores"]), data.get("chosen", {})
        scores, chosen = compute()
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"scores": np.asarray(scores).tolist(), "chosen": chosen}))
        os.replace(tmp, path)
        return np.asarray(scores), chosen


# ---- one dataset ------------------------------------------------------------------------------
def run(which: str, args: argparse.Namespace, out: Path) -> dict:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, \
        TimeElapsedColumn

    console = Console(stderr=True)
    d = load(which, args.data)
    console.print(f"[bold]{d.name}[/]: {len(d.texts)} prompts in {len(set(d.groups))} groups; "
                  f"weak {d.tiers[0]} {d.labels[:, 0].mean():.3f}, strong {d.tiers[1]} "
                  f"{d.labels[:, 1].mean():.3f}")
    enc = load_encoder("embed")
    cache = EmbeddingCache(default_cache_dir(d.name), enc.model_id, enc.dim)
    parts = Parts(d, args.fresh)
    cols = (TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn())
    with Progress(*cols, console=console) as bars:
        task = bars.add_task(f"embed ({len(cache)} cached)", total=len(d.texts))
        emb = embed_texts(d.texts, enc, cache=cache,
                          progress=lambda i, n: bars.update(task, completed=i))
        by_q = fold_indices(len(d.texts), FOLDS, seed=SEED)
        fit_size = len(d.texts) - max(len(h) for h in by_q)
        schemes = {"by_question": (None, None)}
        if which == "mmlu":
            schemes["by_subject"] = (d.groups, None)
        # GSM8K has fewer than 1,500 fitting prompts per fold: then it uses all of them.
        schemes["labels_1500"] = (None, min(1500, fit_size))
        scores: dict[str, dict[str, np.ndarray]] = {s: {} for s in schemes}
        chosen: dict[str, dict] = {}
        for scheme, (groups, size) in schemes.items():
            folds = by_q if groups is None else fold_indices(len(d.texts), FOLDS, seed=SEED,
                                                              groups=groups)
            t = bars.add_task(f"tts {scheme}", total=FOLDS)
            scores[scheme]["tts"], chosen[scheme] = parts.get(
                f"tts-{scheme}", lambda: tts_scores(
                    d, emb, enc.model_id, groups, size,
                    lambda i, n: bars.update(t, completed=i)))
            bars.update(t, completed=FOLDS)
            if which == "mmlu":
                scores[scheme]["subject_mean"] = subject_mean_scores(d, folds)
            scores[scheme]["tfidf"], _ = parts.get(
                f"tfidf-{scheme}", lambda: (tfidf_scores(d, folds, size), []))
        learning = []
        sizes = [n for n in SIZES if n < fit_size]
        lt = bars.add_task("learning curve", total=len(sizes) * 2)
        for size in sizes:
            for router in ("tts", "tfidf"):
                if size == 1500:
                    s = scores["labels_1500"][router]
                elif router == "tts":
                    s, _ = parts.get(f"tts-n{size}", lambda: tts_scores(
                        d, emb, enc.model_id, None, size, None))
                else:
                    s, _ = parts.get(f"tfidf-n{size}", lambda: (tfidf_scores(d, by_q, size),
                                                                 []))
                learning.append({"router": router, "labels": size, **curve(s, d).summary()})
                bars.advance(lt)
    for router in ("tts", "tfidf"):
        learning.append({"router": router, "labels": fit_size,
                         **curve(scores["by_question"][router], d).summary()})
    rand = random_curve(d.labels[:, 0], d.labels[:, 1])
    summary = summarise(which, d, scores, rand, chosen, learning)
    if which == "mmlu":
        summary["subjects"] = subject_spread(d, scores["by_subject"])
    summary["labels_1500_used"] = schemes["labels_1500"][1]
    write(out, which, d, scores, summary, learning)
    old_speed = json.loads((out / "speed.json").read_text()) \
        if (out / "speed.json").is_file() else {}
    if args.speed and which == "mmlu":  # 10,000 prompts: the MMLU set
        what = "all" if args.speed == "route" and not old_speed else args.speed
        summary["speed"] = speed(d, emb, enc, args.speed_prompts, console, what, old_speed)
        (out / "speed.json").write_text(json.dumps(summary["speed"], indent=2) + "\n")
    elif old_speed:
        summary["speed"] = old_speed
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "routing.md").write_text(markdown(which, summary))
    return summary


def summarise(which, d, scores, rand, chosen, learning) -> dict:
    out: dict = {"dataset": d.name, "prompts": len(d.texts), "groups": len(set(d.groups)),
                 "weak": {"model": d.tiers[0], "accuracy": float(d.labels[:, 0].mean())},
                 "strong": {"model": d.tiers[1], "accuracy": float(d.labels[:, 1].mean())},
                 "folds": FOLDS, "seed": SEED}
    routers = ["tts", "subject_mean", "tfidf"] if which == "mmlu" else ["tts", "tfidf"]
    for r in routers:
        out[r] = {s: _round(curve(scores[s][r], d).summary()) for s in scores}
    out["random"] = {s: _round(rand) for s in scores}
    out["tts_chosen"] = {s: c.get("chosen", []) for s, c in chosen.items()}
    out["tts_inner_apgr"] = {s: {k: round(v, 4) for k, v in c.get("inner_apgr", {}).items()}
                             for s, c in chosen.items()}
    pub = PUBLISHED[which]
    out["published"] = {"note": pub["note"], **{
        k: {"cpt50": v[0] / 100, "cpt80": v[1] / 100, "apgr": v[2]}
        for k, v in pub.items() if k != "note"}}
    out["learning_curve"] = [{k: (_r(v) if isinstance(v, float) else v) for k, v in row.items()}
                             for row in learning]
    out["targets"] = TARGETS[which]
    out["command"] = "python bench/route_routellm.py " + " ".join(sys.argv[1:])
    return out


def subject_spread(d: Data, by_subject: dict[str, np.ndarray]) -> dict:
    """What the data says about unseen subjects: each subject's gain (strong right - weak
    right), the share of the gain's variance between subjects, and per held-out fold (subjects
    never seen) the APGR of each router."""
    gain = d.labels[:, 1].astype(float) - d.labels[:, 0]
    groups = np.array(d.groups)
    per = {g: float(gain[groups == g].mean()) for g in sorted(set(d.groups))}
    means = np.array([per[g] for g in groups])
    folds = fold_indices(len(d.texts), FOLDS, seed=SEED, groups=d.groups)
    fold_apgr = {r: [round(routing_curve(s[h], d.labels[h, 0], d.labels[h, 1]).apgr, 4)
                     for h in folds] for r, s in by_subject.items()}
    return {"gain_min": round(min(per.values()), 4), "gain_max": round(max(per.values()), 4),
            "gain_sd_between": round(float(np.std(list(per.values()))), 4),
            "between_share_of_variance": round(float(means.var() / gain.var()), 4),
            "by_subject_fold_apgr": fold_apgr}


def _r(v: float) -> float | None:
    return None if v != v else round(float(v), 4)


def _round(d: dict) -> dict:
    return {k: _r(v) for k, v in d.items()}


# ---- outputs ----------------------------------------------------------------------------------
def write(out: Path, which: str, d: Data, scores: dict, summary: dict, learning: list) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    rows = ["scheme,router,share_strong,accuracy,pgr"]
    fig, axes = plt.subplots(1, len(scores), figsize=(5.2 * len(scores), 4.4), squeeze=False)
    for ax, (scheme, by_router) in zip(axes[0], scores.items()):
        rng = np.random.default_rng(SEED)
        lines = {**by_router, "random": rng.random(len(d.texts))}
        for router, s in lines.items():
            c = curve(s, d)
            for x, a, p in zip(c.share, c.accuracy, c.pgr):
                rows.append(f"{scheme},{router},{x:.4f},{a:.4f},{p:.4f}")
            apgr = summary[router][scheme]["apgr"]
            what = "one draw; APGR mean of 20" if router == "random" else "APGR"
            ax.plot(c.share, c.pgr, marker="o", ms=3, label=f"{router} ({what} {apgr:.3f})")
        ax.plot([0, 1], [0, 1], color="grey", lw=0.6, ls=":")
        ax.set_title(f"{d.name}: {scheme}")
        ax.set_xlabel("share of strong-model calls")
        ax.set_ylabel("PGR (performance gap recovered)")
        ax.legend(fontsize=8, loc="lower right")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "pgr.png", dpi=110)
    plt.close(fig)
    (out / "curves.csv").write_text("\n".join(rows) + "\n")
    lc = ["router,labels,apgr,cpt50,cpt80"] + [
        f"{r['router']},{r['labels']},{r['apgr']:.4f},{r['cpt50']:.4f},{r['cpt80']:.4f}"
        for r in learning]
    (out / "learning.csv").write_text("\n".join(lc) + "\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "routing.md").write_text(markdown(which, summary))


def markdown(which: str, s: dict) -> str:
    def pct(v):
        return "-" if v is None else f"{100 * v:.1f}%"

    lines = [f"# {s['dataset']}: routing before generation, held-out ({s['prompts']} prompts, "
             f"{s['folds']} folds)", "",
             f"Weak {s['weak']['model']} {s['weak']['accuracy']:.3f}, strong "
             f"{s['strong']['model']} {s['strong']['accuracy']:.3f}. Command: "
             f"`{s['command']}`.", ""]
    routers = [r for r in ("tts", "subject_mean", "tfidf", "random") if r in s]
    for scheme in s["tts"]:
        lines += [f"## {scheme}", "", "| router | APGR | CPT(50%) | CPT(80%) |",
                  "|---|---|---|---|"]
        for r in routers:
            m = s[r][scheme]
            lines.append(f"| {r} | {m['apgr']:.3f} | {pct(m['cpt50'])} | {pct(m['cpt80'])} |")
        lines.append("")
    lines += ["## Published (RouteLLM paper; not the same routers' training data)", "",
              "| router | APGR | CPT(50%) | CPT(80%) |", "|---|---|---|---|"]
    for k, m in s["published"].items():
        if k != "note":
            lines.append(f"| {k} | {m['apgr']:.3f} | {pct(m['cpt50'])} | {pct(m['cpt80'])} |")
    lines += ["", s["published"]["note"] + ".", "",
              f"`labels_1500`: each fold's router fitted on {s['labels_1500_used']} labelled "
              f"prompts drawn from its fitting folds.", "",
              "## Learning curve (folds by question)", "",
              "| router | labelled prompts | APGR | CPT(50%) |", "|---|---|---|---|"]
    for row in s["learning_curve"]:
        lines.append(f"| {row['router']} | {row['labels']} | {row['apgr']:.3f} | "
                     f"{pct(row['cpt50'])} |")
    lines += ["", f"tts chose per outer fold: {json.dumps(s['tts_chosen'])}.", "",
              "Each candidate's APGR on the inner folds (mean over the outer folds; what the "
              "nested choice saw):", ""]
    for scheme, inner in s.get("tts_inner_apgr", {}).items():
        best = sorted(inner.items(), key=lambda kv: -kv[1])
        lines.append(f"- {scheme}: " + ", ".join(f"{k} {v:.3f}" for k, v in best))
    lines.append("")
    if "subjects" in s:
        sub = s["subjects"]
        lines += [f"Subjects: gain (strong right - weak right) per subject from "
                  f"{sub['gain_min']:+.3f} to {sub['gain_max']:+.3f} (sd {sub['gain_sd_between']:.3f}"
                  f"); between subjects: {100 * sub['between_share_of_variance']:.1f}% of the "
                  f"per-prompt gain's variance. APGR per held-out fold of unseen subjects: "
                  + "; ".join(f"{r} {v}" for r, v in sub["by_subject_fold_apgr"].items()) + ".",
                  ""]
    lines += ["## Targets (issue 24), as measured here", ""] + targets(which, s) + [""]
    if which == "mmlu":
        lines += ["`subject_mean` by subject scores every held-out (unseen) subject with the "
                  "fitting folds' overall mean gain: one constant per fold, so its curve only "
                  "says which folds' constants came out higher (below random here).", ""]
    if "speed" in s:
        sp = s["speed"]
        lines += ["## Speed", "", f"Embedding {sp['embed_prompts']} prompts: "
                  f"{sp['embed_seconds']:.0f} s ({sp['embed_per_second']:.1f}/s; load average "
                  f"{sp['load_before']:.1f} before, {sp['load_after']:.1f} after, "
                  f"{sp['cpus']} CPUs shared with other jobs), {sp['embed_cpu_seconds']:.0f} "
                  f"CPU-seconds: 10,000 prompts would take "
                  f"{sp['embed_10k_on_2_free_cores_s']:.0f} s on 2 free cores at that CPU cost. "
                  f"Routing one embedded prompt (load {sp.get('route_load', sp['load_after']):.1f}, "
                  f"{sp.get('route_when', sp['when'])}): "
                  + ", ".join(f"{k} median {v['median_ms']:.2f} ms (p95 {v['p95_ms']:.2f})"
                              for k, v in sp["route_one"].items()) + ".", ""]
    return "\n".join(lines)


def targets(which: str, s: dict) -> list[str]:
    """One line per target: the measured value beside it and whether it is met."""
    out = []
    want = TARGETS[which]
    for scheme, goals in ((k, v) for k, v in want.items() if isinstance(v, dict)):
        for metric, goal in goals.items():
            got = s["tts"][scheme][metric]
            ok = got >= goal if metric == "apgr" else got <= goal
            sign = ">=" if metric == "apgr" else "<="
            out.append(f"- {scheme} {metric}: {got:.4f} (target {sign} {goal}): "
                       f"{'met' if ok else 'NOT met'}")
    if "beat_baselines_by" in want:
        for base in ("subject_mean", "tfidf"):
            gap = s["tts"]["by_question"]["apgr"] - s[base]["by_question"]["apgr"]
            ok = gap >= want["beat_baselines_by"]
            out.append(f"- by_question APGR over {base}: {gap:+.4f} (target >= "
                       f"+{want['beat_baselines_by']}): {'met' if ok else 'NOT met'}")
    return out


# ---- speed ------------------------------------------------------------------------------------
def speed(d: Data, emb: np.ndarray, enc, n: int, console, what: str, old: dict) -> dict:
    """`what` "all": time embedding `n` prompts and routing one; "route": routing only, the
    embedding numbers kept from `old` (the last speed.json)."""
    out = dict(old) if what == "route" else embed_speed(d, enc, n, console)
    return {**out, **route_speed(d, emb, enc)}


def embed_speed(d: Data, enc, n: int, console) -> dict:
    texts = (d.texts * (n // len(d.texts) + 1))[:n]
    texts = [f"{t}\n({i})" if i >= len(d.texts) else t for i, t in enumerate(texts)]
    load_before = os.getloadavg()[0]
    console.print(f"speed: embedding {n} prompts without cache (load {load_before:.1f})")
    t0, c0 = time.perf_counter(), time.process_time()
    enc.encode(texts)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"embed_prompts": n, "embed_seconds": dt, "embed_per_second": n / dt,
            "embed_cpu_seconds": cpu, "embed_10k_on_2_free_cores_s": cpu / n * 10_000 / 2,
            "load_before": load_before, "load_after": os.getloadavg()[0],
            "cpus": os.cpu_count(), "torch_threads": _threads(),
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def route_speed(d: Data, emb: np.ndarray, enc) -> dict:
    """Median and p95 time to route one embedded prompt, per model family (reloaded from
    JSON), and the load average while timing."""
    route = {}
    load = os.getloadavg()[0]
    for cand in (Candidate.logistic(0.3), Candidate.knn(50), Candidate.blend(0.3, 50),
                 Candidate(c=0.3, k=50, t=1.0)):
        r = Router.fit(d.texts, d.labels, embeddings=emb, tiers=d.tiers,
                       embed_model=enc.model_id, candidate=cand)
        r = Router.from_json(r.to_json())
        times = []
        for i in range(300):
            j = i % len(d.texts)
            text = f"{d.texts[j]} "  # a text the prompt-feature cache has not seen
            t = time.perf_counter()
            r.predict([text], embeddings=emb[j:j + 1])
            times.append(1000 * (time.perf_counter() - t))
        route[cand.name] = {"median_ms": float(np.median(times)),
                            "p95_ms": float(np.percentile(times, 95))}
    return {"route_one": route, "route_load": max(load, os.getloadavg()[0]),
            "route_when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _threads() -> int:
    import torch

    return int(torch.get_num_threads())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=("mmlu", "gsm8k"), default=None)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, default=ROOT / "results")
    ap.add_argument("--speed", nargs="?", const="all", choices=("all", "route"), default=None,
                    help="also time embedding and routing (route: routing only, embedding "
                         "numbers kept from the last speed.json)")
    ap.add_argument("--speed-prompts", type=int, default=10_000)
    ap.add_argument("--fresh", action="store_true", help="recompute cached held-out scores")
    args = ap.parse_args()
    if not (args.data / "routellm_mmlu").is_dir():
        print(f"no RouteLLM data in {args.data}: pass --data", file=sys.stderr)
        return 2
    from threadpoolctl import threadpool_limits

    for which in ("mmlu", "gsm8k"):
        if args.only in (None, which):
            # One BLAS thread: on a shared, loaded CPU more threads only spin (3x slower fits).
            with threadpool_limits(1):
                s = run(which, args, args.out / f"routellm_{which}")
            print(json.dumps({k: s[k] for k in ("tts", "random", "tfidf")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
