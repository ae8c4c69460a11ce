"""What our own small/large pair says (issue 10): per-model accuracy curves, parallel voting
against one long chain at equal tokens, small-with-samples against large per difficulty bin,
and confidence-weighted voting -- all read from the Qwen GSM8K bank, on the questions it holds.

    python bench/qwen_report.py [--bank bench/results/qwen_gsm8k/bank]
                                [--out bench/results/qwen_gsm8k/report] [--boot 2000]

Writes `summary.json`, one CSV per table, `report.md` and `report.png` (written by
`qwen_report_render.py`) into --out. Every comparison between strategies uses only the
questions that hold every mode it compares, and says how many. Nothing here is tuned on the
questions it scores:

* maj@k is the mean over `PERMUTATIONS` random orders of a question's samples (ties broken by
  first appearance, as `tts.answers.count_votes` does); pass@k is the unbiased estimator.
* Parallel vs sequential: one budget-forced chain of length L against vote@N at the same mean
  generated tokens (N fractional: linear between the two neighbouring k), paired bootstrap over
  questions for the CIs.
* Budget forcing: each logged chain's answer at its first natural stop (the text before the
  first "Wait" cue) against its final answer, per chain length, with the per-sample accuracy of
  plain samples on the same questions, which the first stop should match (same prompt and
  temperature), so the table says whether the tokens forcing adds change answers.
* Difficulty bins (Snell et al. 2024): a question's difficulty is the small model's pass rate
  on samples 8-15, and its small votes use samples 0-7, so a bin never looks at the samples it
  scores. Bin edges are quintiles fitted on the other half of the questions (2-fold), and the
  strategy that wins a (bin, budget) cell is picked on the other half too; its accuracy is
  reported on this half. Compute is generated tokens times active parameters (small tokens).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from rich.console import Console
from rich.progress import track

sys.path.insert(0, str(Path(__file__).resolve().parent))

from qwen_report_render import markdown, plot, write_csv  # noqa: E402
from tts.answers import class_ids, extract_answer, is_correct  # noqa: E402
from tts.bank import SampleBank, load_bank  # noqa: E402
from tts.measures import mean_ci95  # noqa: E402
from tts.prompts import CONTINUE_CUE, FINAL_ANSWER_CUE  # noqa: E402
from tts.strategies.chain import is_forced_chain_mode  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BANK = ROOT / "bench/results/qwen_gsm8k/bank"
OUT = ROOT / "bench/results/qwen_gsm8k/report"
PERMUTATIONS = 200
BUDGETS = (256, 512, 1024, 2048, 4096)  # small-model tokens per question
BINS = 5
console = Console()


# ---- one (model, mode) as arrays ------------------------------------------------------------
@dataclass(frozen=True)
class Mode:
    """The samples of one (model, mode) on `questions`: answer class, correctness, tokens."""

    model: str
    mode: str
    questions: tuple[str, ...]
    classes: np.ndarray        # (Q, S) int, -1 = abstained; ids shared across a question's modes
    correct: np.ndarray        # (Q, S) bool
    class_correct: np.ndarray  # (Q, C) bool: is class c of question q the gold answer
    tokens: np.ndarray         # (Q, S) generated tokens
    finish_length: np.ndarray  # (Q, S) bool: cut at the cap
    conf: np.ndarray           # (Q, S) lowest window confidence (nan if not logged)
    logprob: np.ndarray        # (Q, S) mean token logprob (nan if not logged)

    def subset(self, questions: Sequence[str]) -> "Mode":
        index = {q: i for i, q in enumerate(self.questions)}
        rows = np.array([index[q] for q in questions], dtype=int)
        return Mode(self.model, self.mode, tuple(questions), self.classes[rows],
                    self.correct[rows], self.class_correct[rows], self.tokens[rows],
                    self.finish_length[rows], self.conf[rows], self.logprob[rows])

    def samples(self, cols: slice) -> "Mode":
        return Mode(self.model, self.mode, self.questions, self.classes[:, cols],
                    self.correct[:, cols], self.class_correct, self.tokens[:, cols],
                    self.finish_length[:, cols], self.conf[:, cols], self.logprob[:, cols])


def load_modes(bank: SampleBank) -> dict[tuple[str, str], Mode]:
    """Every (model, mode) of the bank, on the questions where it has its full sample count;
    answer classes are computed once per question over all its samples, so votes of
    different modes and models name the same answers alike."""
    by_question: dict[str, list] = {}
    for (pid, model, mode), rec in bank.records.items():
        by_question.setdefault(pid, []).append((model, mode, rec))
    per_mode: dict[tuple[str, str], dict[str, tuple]] = {}
    for pid in track(sorted(by_question), description="answer classes", console=console,
                     transient=True):
        gold = bank.problems[pid].gold
        recs = sorted(by_question[pid], key=lambda t: (t[0], t[1]))
        answers = [s.answer for _, _, rec in recs for s in rec.samples]
        ids = class_ids(answers)
        n_classes = max(ids, default=-1) + 1
        class_ok = np.zeros(max(n_classes, 1), dtype=bool)
        for a, c in zip(answers, ids):
            if c >= 0 and not class_ok[c] and is_correct(a, gold):
                class_ok[c] = True
        at = 0
        for model, mode, rec in recs:
            n = len(rec.samples)
            per_mode.setdefault((model, mode), {})[pid] = (ids[at:at + n], rec.samples, class_ok)
            at += n
    out = {}
    for key, rows in per_mode.items():
        size = max(len(v[1]) for v in rows.values())
        qs = tuple(sorted(q for q, v in rows.items() if len(v[1]) == size))
        width = max(len(rows[q][2]) for q in qs)
        cls = np.array([rows[q][0] for q in qs], dtype=int).reshape(len(qs), size)
        ok = np.zeros((len(qs), width), dtype=bool)
        for i, q in enumerate(qs):
            ok[i, :len(rows[q][2])] = rows[q][2]
        samples = [rows[q][1] for q in qs]

        def grid(get) -> np.ndarray:
            return np.array([[get(s) for s in row] for row in samples],
                            dtype=float).reshape(len(qs), size)

        correct = np.where(cls >= 0, np.take_along_axis(ok, np.maximum(cls, 0), axis=1), False)
        out[key] = Mode(key[0], key[1], qs, cls, correct, ok, grid(lambda s: s.tokens),
                        grid(lambda s: s.finish == "length").astype(bool),
                        grid(lambda s: np.nan if s.min_conf is None else s.min_conf),
                        grid(lambda s: np.nan if s.logprob is None else s.logprob))
    return out


# ---- voting ---------------------------------------------------------------------------------
def vote_correct(m: Mode, order: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """(Q, R, S) bool: is the (weighted) vote over the first k samples of each order right,
    for k = 1..S. `order` is (Q, R, S) sample indices; ties go to the answer seen first."""
    q_n, r_n, s_n = order.shape
    cls = np.take_along_axis(m.classes[:, None, :].repeat(r_n, 1), order, axis=2)
    w = np.ones_like(cls, dtype=float) if weights is None else np.take_along_axis(
        weights[:, None, :].repeat(r_n, 1), order, axis=2)
    width = m.class_correct.shape[1]
    onehot = (cls[..., None] == np.arange(width)) * w[..., None]          # (Q, R, S, C)
    tally = np.cumsum(onehot, axis=2)
    seen = np.cumsum(cls[..., None] == np.arange(width), axis=2) > 0
    first = np.argmax(cls[..., None] == np.arange(width), axis=2)[:, :, None, :]  # (Q,R,1,C)
    tally = np.where(seen, tally, -np.inf)
    top = tally == tally.max(axis=3, keepdims=True)
    leader = np.argmax(np.where(top, -first, -np.inf), axis=3)            # (Q, R, S)
    any_vote = seen.any(axis=3)
    right = np.take_along_axis(m.class_correct[:, None, :].repeat(r_n, 1), leader, axis=2)
    return right & any_vote


def orders(m: Mode, rng: np.random.Generator, n: int = PERMUTATIONS) -> np.ndarray:
    s = m.classes.shape[1]
    return np.argsort(rng.random((len(m.questions), n, s)), axis=2)


def maj_at_k(m: Mode, rng: np.random.Generator) -> np.ndarray:
    """(Q, S): per question, the share of random orders whose first-k vote is right."""
    return vote_correct(m, orders(m, rng)).mean(axis=1)


def pass_at_k(m: Mode) -> np.ndarray:
    """(S,) unbiased pass@k (Chen et al. 2021), averaged over questions."""
    n = m.correct.shape[1]
    c = m.correct.sum(axis=1)
    out = []
    for k in range(1, n + 1):
        fail = [math.comb(n - ci, k) / math.comb(n, k) if n - ci >= k else 0.0 for ci in c]
        out.append(1.0 - float(np.mean(fail)))
    return np.array(out)


def interp_k(curve: np.ndarray, k: float) -> np.ndarray:
    """Per-question value of a (Q, S) maj@k curve at fractional k (linear in k)."""
    k = min(max(k, 1.0), curve.shape[1])
    lo = int(math.floor(k))
    hi = min(lo + 1, curve.shape[1])
    frac = k - lo
    return curve[:, lo - 1] * (1 - frac) + curve[:, hi - 1] * frac


# ---- the four analyses ----------------------------------------------------------------------
def per_model(modes: dict, stats: dict, rng: np.random.Generator) -> list[dict[str, Any]]:
    rows = []
    for (model, mode), m in sorted(modes.items()):
        s = m.classes.shape[1]
        maj = maj_at_k(m, rng).mean(axis=0) if s > 1 else m.correct.mean(axis=0)
        rows.append({
            "model": model, "mode": mode, "questions": len(m.questions), "samples": s,
            "per_sample_acc": float(m.correct.mean()),
            "maj_at_k": [round(float(x), 4) for x in maj],
            "pass_at_k": [round(float(x), 4) for x in pass_at_k(m)],
            "mean_tokens": float(m.tokens.mean()),
            "cut_at_cap": float(m.finish_length.mean()),
            "build_tokens_per_s": (stats.get(model, {}).get(mode) or {}).get("tokens_per_s"),
        })
    return rows


def chain_modes(modes: dict, small: str) -> list[str]:
    """The small model's budget-forced chain modes ("chain-<L>"), shortest first."""
    return sorted((md for (mo, md) in modes if mo == small and is_forced_chain_mode(md)),
                  key=lambda md: int(md.split("-")[1]))


def parallel_vs_chain(modes: dict, small: str, rng: np.random.Generator, boot: int
                      ) -> list[dict[str, Any]]:
    if (small, "sample") not in modes:
        return []
    rows = []
    for mode in chain_modes(modes, small):
        qs = sorted(set(modes[(small, "sample")].questions) & set(modes[(small, mode)].questions))
        if not qs:
            continue
        vote = modes[(small, "sample")].subset(qs)
        chain = modes[(small, mode)].subset(qs)
        curve = maj_at_k(vote, rng)                       # (Q, 16)
        chain_acc = chain.correct.mean(axis=1)            # one chain: mean over the logged chains
        chain_tokens = float(chain.tokens.mean())
        k = chain_tokens / float(vote.tokens.mean())
        vote_acc = interp_k(curve, k)
        diff = vote_acc - chain_acc
        rows.append({
            "chain": mode, "questions": len(qs), "chain_tokens": round(chain_tokens, 1),
            "vote_samples": round(k, 2), "vote_tokens": round(k * float(vote.tokens.mean()), 1),
            "chain_acc": float(chain_acc.mean()), "chain_ci": mean_ci95(chain_acc, boot),
            "vote_acc": float(vote_acc.mean()), "vote_ci": mean_ci95(vote_acc, boot),
            "vote_minus_chain": float(diff.mean()), "diff_ci": mean_ci95(diff, boot),
            "vote_beyond_samples": k > curve.shape[1],
        })
    return rows


def first_stop(text: str) -> str | None:
    """A forced chain's text up to its first natural stop (before the first "Wait" cue), or
    None when it never stopped: cut at its length first, its answer forced. A "\nWait" the
    model writes itself also ends the first stop here, which the text cannot tell apart."""
    head = text.split(CONTINUE_CUE, 1)[0]
    return None if FINAL_ANSWER_CUE in head else head


def forcing_effect(bank: SampleBank, modes: dict, small: str, boot: int
                   ) -> list[dict[str, Any]]:
    """Per chain length: how often forcing ran (chains that stopped early and were told
    "Wait"; chains cut at their length and asked for the answer) and whether it changed the
    chain's answer, against the first natural stop's answer. The number of cues is not
    counted: the model writes "Wait" lines of its own."""
    rows = []
    for mode in chain_modes(modes, small):
        qs, first, final, forced, stopped = [], [], [], [], []
        for pid in modes[(small, mode)].questions:
            gold = bank.problems[pid].gold
            chains = [s for s in bank.records[(pid, small, mode)].samples if s.text is not None]
            if not chains:
                continue
            qs.append(pid)
            heads = [first_stop(s.text) for s in chains]
            # a chain that never stopped has the same answer at its "first stop" and its end
            first.append(np.mean([is_correct(s.answer if h is None else extract_answer(h), gold)
                                  for s, h in zip(chains, heads)]))
            final.append(np.mean([is_correct(s.answer, gold) for s in chains]))
            forced += [FINAL_ANSWER_CUE in s.text for s in chains]
            stopped += [h is not None for h in heads]
        if not first:
            continue
        first_a, final_a = np.array(first), np.array(final)
        row = {"chain": mode, "questions": len(qs), "chains": len(forced),
               "stopped_early": float(np.mean(stopped)),
               "answer_forced": float(np.mean(forced)),
               "first_stop_acc": float(first_a.mean()), "final_acc": float(final_a.mean()),
               "final_minus_first": float((final_a - first_a).mean()),
               "diff_ci": mean_ci95(final_a - first_a, boot)}
        if (small, "sample") in modes and set(qs) <= set(modes[(small, "sample")].questions):
            plain = modes[(small, "sample")].subset(qs).correct.mean(axis=1)
            row["plain_sample_acc"] = float(plain.mean())
            row["first_minus_plain_ci"] = mean_ci95(first_a - plain, boot)
        rows.append(row)
    return rows


@dataclass(frozen=True)
class Config:
    family: str   # "small-vote", "small-chain", "large"
    name: str
    cost: np.ndarray     # (Q,) small-token-equivalent compute
    correct: np.ndarray  # (Q,) expected correctness


def configs(modes: dict, small: str, large: str, qs: Sequence[str], ratio: float,
            rng: np.random.Generator, chains: Sequence[str]) -> list[Config]:
    """Every fixed configuration of the three families on `qs` (small chains: the modes
    `chains`), per question."""
    out = []
    vote = modes[(small, "sample")].subset(qs).samples(slice(0, 8))  # 8-15 set the bins
    curve = maj_at_k(vote, rng)
    mean_tok = vote.tokens.mean(axis=1)
    for k in range(1, curve.shape[1] + 1):
        out.append(Config("small-vote", f"vote@{k}", k * mean_tok, curve[:, k - 1]))
    for (mo, md), m in modes.items():
        if mo == small and md in chains:
            c = m.subset(qs)
            out.append(Config("small-chain", md, c.tokens.mean(axis=1), c.correct.mean(axis=1)))
    if (large, "greedy") in modes:
        g = modes[(large, "greedy")].subset(qs)
        out.append(Config("large", "greedy", g.tokens[:, 0] * ratio, g.correct[:, 0]))
    if (large, "sample") in modes:
        lv = modes[(large, "sample")].subset(qs)
        lcurve = maj_at_k(lv, rng)
        ltok = lv.tokens.mean(axis=1) * ratio
        for k in range(2, lcurve.shape[1] + 1):
            out.append(Config("large", f"vote@{k}", k * ltok, lcurve[:, k - 1]))
    return out


def difficulty_bins(modes: dict, small: str, large: str, ratio: float,
                    rng: np.random.Generator) -> dict[str, Any]:
    need = [(small, "sample")] + [k for k in modes if k[0] == large]
    chains = [k for k in modes if k[0] == small and is_forced_chain_mode(k[1])]
    # Chain lengths still being built would shrink the table to their few questions: use the
    # lengths held by the most questions.
    most = max((len(modes[k].questions) for k in chains), default=0)
    need += [k for k in chains if len(modes[k].questions) == most]
    samples = modes.get((small, "sample"))
    if len(need) < 2 or samples is None or samples.classes.shape[1] < 16:
        return {}
    qs = sorted(set.intersection(*(set(modes[k].questions) for k in need)))
    if len(qs) < 2 * BINS:
        return {"questions": len(qs), "note": "too few questions hold every mode"}
    difficulty = modes[(small, "sample")].subset(qs).samples(slice(8, 16)).correct.mean(axis=1)
    cfgs = configs(modes, small, large, qs, ratio, rng, [k[1] for k in need if k in chains])
    fold = rng.permutation(len(qs)) % 2
    families = sorted({c.family for c in cfgs})
    cells = []
    for budget in BUDGETS:
        for b in range(BINS):
            heldout = {f: [] for f in families}
            winners, sizes, rates = [], [], []
            for f_out in (0, 1):
                fit, score = fold != f_out, fold == f_out
                edges = np.quantile(difficulty[fit], np.linspace(0, 1, BINS + 1)[1:-1])
                # bin 0 = hardest (lowest pass rate); equal edges leave some bins empty
                bins = np.digitize(difficulty, edges, right=True)
                in_fit, in_score = fit & (bins == b), score & (bins == b)
                sizes.append(int(in_score.sum()))
                rates.extend(difficulty[in_score].tolist())
                best = {}
                for f in families:
                    ok = [c for c in cfgs if c.family == f
                          and in_fit.any() and c.cost[in_fit].mean() <= budget]
                    if ok:
                        best[f] = max(ok, key=lambda c: c.correct[in_fit].mean())
                for f, c in best.items():
                    if in_score.any():
                        heldout[f].append((c.correct[in_score].sum(), int(in_score.sum()), c.name))
                if best:
                    winners.append(max(best, key=lambda f: best[f].correct[in_fit].mean()))
            row: dict[str, Any] = {"budget": budget, "bin": b, "questions": sum(sizes),
                                   "pass_rate": [min(rates), max(rates)] if rates else None,
                                   "picked_on_other_half": winners}
            for f in families:
                got = heldout[f]
                n = sum(g[1] for g in got)
                row[f] = (float(sum(g[0] for g in got) / n) if n else None)
                row[f + "_configs"] = [g[2] for g in got]
            cells.append(row)
    return {"questions": len(qs), "chain_modes": sorted(k[1] for k in need if k in chains),
            "bins": BINS, "budgets": list(BUDGETS),
            "families": families, "cells": cells}


def top_half_correct(m: Mode, order: np.ndarray, k: int, conf: np.ndarray) -> np.ndarray:
    """(Q, R) bool: within the first k of each order keep the k // 2 most confident samples
    (abstaining ones included; ties by order position) and vote with them."""
    first = order[:, :, :k]
    c = np.take_along_axis(np.broadcast_to(conf[:, None, :], order.shape), first, axis=2)
    keep = np.argsort(-c, axis=2, kind="stable")[:, :, :max(1, k // 2)]
    kept = np.sort(np.take_along_axis(first, keep, axis=2), axis=2)
    return vote_correct(m, kept)[:, :, -1]


def confidence_votes(modes: dict, small: str, rng: np.random.Generator, boot: int
                     ) -> list[dict[str, Any]]:
    """Plain vote against votes weighted by confidence and against keeping the most confident
    half (DeepConf's filter), all over the same N samples (equal tokens)."""
    m = modes.get((small, "sample"))
    if m is None or np.isnan(m.conf).all():
        return []
    rows = []
    order = orders(m, rng, 100)
    plain = vote_correct(m, order).mean(axis=1)
    conf_w = np.nan_to_num(m.conf, nan=0.0)
    weighted = vote_correct(m, order, np.maximum(conf_w, 1e-9)).mean(axis=1)
    lp_w = np.exp(np.nan_to_num(m.logprob, nan=-50.0))
    by_lp = vote_correct(m, order, lp_w).mean(axis=1)
    for k in (4, 8, 16):
        if k > m.classes.shape[1]:
            continue
        filtered = top_half_correct(m, order, k, conf_w).mean(axis=1)
        for name, acc in (("plain", plain[:, k - 1]), ("min_conf-weighted", weighted[:, k - 1]),
                          ("logprob-weighted", by_lp[:, k - 1]), ("top-half by min_conf",
                                                                  filtered)):
            rows.append({"samples": k, "vote": name, "questions": len(m.questions),
                         "acc": float(acc.mean()), "ci": mean_ci95(acc, boot),
                         "minus_plain": float((acc - plain[:, k - 1]).mean()),
                         "diff_ci": mean_ci95(acc - plain[:, k - 1], boot)})
    return rows


EVAL_SEEDS = 100
"""Seeded sample orders the evaluator averages over (as many as `confidence_votes`' orders)."""
CONF_VOTES = (("plain", "none", 1.0), ("min_conf-weighted", "min_conf", 1.0),
              ("logprob-weighted", "logprob", 1.0), ("top-half by min_conf", "none", 0.5))
"""The votes of `confidence_votes` as `Vote` options: (name, weight, keep)."""


def confidence_votes_evaluated(bank: SampleBank, modes: dict, small: str,
                               seeds: int = EVAL_SEEDS) -> list[dict[str, Any]]:
    """The same votes as the product feature: `Vote(max_samples=k, confidence=1.0, weight=...,
    keep=...)` run by `tts.evaluate.evaluate` (bit-equal to the engine) on the questions
    `confidence_votes` uses, over seeds 0..seeds-1; and, as a check, the offline
    `vote_correct` on exactly those seeded orders (plain and weighted votes must agree with
    the evaluator question by question; the offline filter also ranks abstaining samples, the
    product's `keep` ranks only samples with an answer). Plus confidence-based early stopping:
    `Vote(max_samples=16, wave=4, confidence=0.95)` plain vs weighted, with mean samples."""
    from tts.bank import sample_order
    from tts.evaluate import BankArrays, evaluate
    from tts.strategies import Vote

    m = modes.get((small, "sample"))
    if m is None or np.isnan(m.conf).any() or np.isnan(m.logprob).any():
        return []
    arrays = BankArrays.from_bank(bank, m.questions)
    width = m.classes.shape[1]
    order = np.array([[sample_order(q, small, "sample", s, width) for s in range(seeds)]
                      for q in m.questions])                              # (Q, seeds, S)
    budget = 10 ** 9  # never binding: equal tokens = the same k samples
    rows = []
    for k in (4, 8, 16):
        if k > width:
            continue
        for name, weight, keep in CONF_VOTES:
            plan = Vote(max_samples=k, wave=k, confidence=1.0, weight=weight, keep=keep)
            ev = evaluate(arrays, plan, budget, range(seeds))
            acc = ev.correct.mean(axis=0)                                   # per question
            row = {"samples": k, "vote": name, "weight": weight, "keep": keep,
                   "questions": len(m.questions), "evaluator_acc": float(acc.mean()),
                   "mean_samples": float(ev.small_samples.mean())}
            if keep == 1.0:
                w = None if weight == "none" else m.conf if weight == "min_conf" else np.exp(
                    m.logprob)
                offline = vote_correct(m, order[:, :, :k], w)[:, :, k - 1]     # (Q, seeds)
                row["offline_same_orders_acc"] = float(offline.mean())
                row["per_question_equal"] = bool((offline.T == ev.correct).all())
            else:
                offline = top_half_correct(m, order, k, m.conf)
                row["offline_same_orders_acc"] = float(offline.mean())
            rows.append(row)
    for name, weight in (("plain", "none"), ("min_conf-weighted", "min_conf"),
                         ("logprob-weighted", "logprob")):
        plan = Vote(max_samples=min(16, width), wave=4, confidence=0.95, weight=weight)
        ev = evaluate(arrays, plan, budget, range(seeds))
        rows.append({"samples": f"<={plan.max_samples}, stop at 0.95", "vote": name,
                     "weight": weight, "keep": 1.0, "questions": len(m.questions),
                     "evaluator_acc": ev.accuracy, "mean_samples": float(
                         ev.small_samples.mean())})
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bank", default=str(BANK))
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--boot", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    bank = load_bank(args.bank)
    meta = json.loads((Path(args.bank) / "meta.json").read_text())
    stats = (meta.get("build") or {}).get("stats", {})
    small, large = bank.meta.roles["small"], bank.meta.roles.get("large")
    # price of a large output token in small ones (active parameters for this bank)
    cost = bank.meta.cost
    ratio = cost.of(large).output / cost.of(small).output if large else 1.0
    rng = np.random.default_rng(args.seed)
    modes = load_modes(bank)
    summary = {
        "command": "python bench/qwen_report.py" + (f" --bank {args.bank}"
                                                    if Path(args.bank) != BANK else ""),
        "bank_questions": len(bank.problem_ids), "ratio": ratio,
        "per_model": per_model(modes, stats, rng),
        "parallel_vs_chain": parallel_vs_chain(modes, small, rng, args.boot),
        "difficulty": difficulty_bins(modes, small, large, ratio, rng) if large else {},
        "confidence": confidence_votes(modes, small, rng, args.boot),
        "confidence_evaluated": confidence_votes_evaluated(bank, modes, small),
        "forcing": forcing_effect(bank, modes, small, args.boot),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    write_csv(out / "per_model.csv", summary["per_model"])
    write_csv(out / "parallel_vs_chain.csv", summary["parallel_vs_chain"])
    write_csv(out / "difficulty.csv", summary["difficulty"].get("cells", []))
    write_csv(out / "confidence.csv", summary["confidence"])
    write_csv(out / "forcing.csv", summary["forcing"])
    (out / "report.md").write_text(markdown(summary))
    plot(summary, out / "report.png")
    console.print(markdown(summary), markup=False, highlight=False, soft_wrap=True)
    return 0



if __name__ == "__main__":
    raise SystemExit(main())
