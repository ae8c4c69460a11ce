"""The files of bench/qwen_report.py: one CSV per table, `report.md` and `report.png`, all
from the summary dict it also writes as `summary.json` (plain data: nothing here computes a
number)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["write_csv", "markdown", "plot"]


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        path.unlink(missing_ok=True)
        return
    keys = list(rows[0])
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: json.dumps(v) if isinstance(v, (list, tuple, dict)) else v
                        for k, v in r.items()})


def _ci(ci) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def markdown(summary: dict[str, Any]) -> str:
    lines = [f"# Qwen GSM8K: what the bank says ({summary['bank_questions']} questions built)",
             "", f"`{summary['command']}`. Compute = generated tokens x active parameters, in "
             f"small-model tokens (a large token = {summary['ratio']:.2f}).", ""]
    if len({r["questions"] for r in summary["per_model"]}) > 1:
        lines += ["Modes hold different numbers of questions (the build has not finished): every "
                  "table says how many it uses; a table over a few questions settles nothing (see "
                  "its CIs).", ""]
    lines += ["## 1. Per model and mode", "",
              "| model | mode | questions | samples | per-sample | maj@1 | maj@4 | maj@8 | maj@16 |"
              " pass@all samples | mean tokens | cut at cap | build tok/s |", "|" + "---|" * 13]
    for r in summary["per_model"]:
        maj, pas = r["maj_at_k"], r["pass_at_k"]

        def at(v, k):
            return f"{v[k - 1]:.3f}" if len(v) >= k else ""
        lines.append(f"| {r['model']} | {r['mode']} | {r['questions']} | {r['samples']} | "
                     f"{r['per_sample_acc']:.3f} | {at(maj, 1)} | {at(maj, 4)} | {at(maj, 8)} | "
                     f"{at(maj, 16)} | {at(pas, 16) or at(pas, len(pas))} | "
                     f"{r['mean_tokens']:.0f} | {r['cut_at_cap']:.2f} | "
                     f"{r['build_tokens_per_s'] or ''} |")
    lines += ["", "## 2. Parallel vote vs one long chain, equal mean generated tokens", ""]
    if summary["parallel_vs_chain"]:
        lines += ["| chain | questions | tokens | chain acc [95% CI] | vote@N | "
                  "vote acc [95% CI] | vote - chain [95% CI] |", "|" + "---|" * 7]
        for r in summary["parallel_vs_chain"]:
            lines.append(f"| {r['chain']} | {r['questions']} | {r['chain_tokens']:.0f} | "
                         f"{r['chain_acc']:.3f} {_ci(r['chain_ci'])} | {r['vote_samples']:.2f} | "
                         f"{r['vote_acc']:.3f} {_ci(r['vote_ci'])} | "
                         f"{r['vote_minus_chain']:+.3f} {_ci(r['diff_ci'])} |")
    else:
        lines.append("Not yet: the bank holds no chains.")
    lines += ["", "## 3. Small + samples vs large, per difficulty bin (held-out, 2-fold)", ""]
    d = summary["difficulty"]
    if d.get("cells"):
        fams = d["families"]
        lines += [f"{d['questions']} questions holding small samples, large samples and greedy, "
                  f"and chains {', '.join(d.get('chain_modes', [])) or 'none'} (the chain "
                  f"lengths held by the most questions); bin 0 = hardest.", "",
                  "| budget | bin | small pass rate | questions | " + " | ".join(fams)
                  + " | picked on other half |", "|" + "---|" * (5 + len(fams))]
        for c in d["cells"]:
            if not c["questions"]:
                continue  # tied pass rates merge quintiles: an empty bin has nothing to show
            vals = " | ".join("" if c[f] is None else f"{c[f]:.3f}" for f in fams)
            rate = "" if c["pass_rate"] is None else "{:.2f}-{:.2f}".format(*c["pass_rate"])
            lines.append(f"| {c['budget']} | {c['bin']} | {rate} | {c['questions']} | {vals} | "
                         f"{', '.join(c['picked_on_other_half'])} |")
    else:
        lines.append(f"Not yet: {d.get('note', 'the bank holds no large samples or chains')}.")
    lines += ["", "## 4. Confidence-weighted vote vs plain vote, same samples (equal tokens)", ""]
    if summary["confidence"]:
        lines += ["| samples | vote | questions | acc [95% CI] | minus plain [95% CI] |",
                  "|" + "---|" * 5]
        for r in summary["confidence"]:
            lines.append(f"| {r['samples']} | {r['vote']} | {r['questions']} | {r['acc']:.3f} "
                         f"{_ci(r['ci'])} | {r['minus_plain']:+.3f} {_ci(r['diff_ci'])} |")
    if summary.get("confidence_evaluated"):
        offline = {(r["samples"], r["vote"]): r["acc"] for r in summary["confidence"]}
        lines += ["", "The same votes as the product feature (`Vote(weight=..., keep=...)`, "
                  "run by `tts.evaluate`, bit-equal to the engine) over seeded orders 0..99; "
                  "\"offline, same orders\" is the table above's `vote_correct` on exactly "
                  "those orders (the table above uses its own 100 random orders). The "
                  "product's `keep` ranks only samples with an answer; the offline filter "
                  "also ranks (and may keep) abstaining ones.", "",
                  "| samples | vote | evaluator acc | offline, same orders | equal per question "
                  "| offline, own orders | mean samples |", "|" + "---|" * 7]
        for r in summary["confidence_evaluated"]:
            same = r.get("offline_same_orders_acc")
            own = offline.get((r["samples"], r["vote"]))
            lines.append(f"| {r['samples']} | {r['vote']} | {r['evaluator_acc']:.3f} | "
                         f"{'' if same is None else f'{same:.3f}'} | "
                         f"{r.get('per_question_equal', '')} | "
                         f"{'' if own is None else f'{own:.3f}'} | {r['mean_samples']:.2f} |")
    if summary.get("forcing"):
        lines += ["", "## 5. What budget forcing does to a chain", "",
                  "Each chain's answer at its first natural stop (text before the first "
                  "\"Wait\") against its final answer; \"plain sample\" is the per-sample "
                  "accuracy of the 512-token samples on the same questions, which the first "
                  "stop draws from the same distribution as (same prompt and temperature).", "",
                  "| chain | questions | chains | stopped early | answer forced | "
                  "plain sample | first stop [first - plain, 95% CI] | final | "
                  "final - first [95% CI] |", "|" + "---|" * 9]
        for r in summary["forcing"]:
            plain = r.get("plain_sample_acc")
            vs = f" {_ci(r['first_minus_plain_ci'])}" if plain is not None else ""
            lines.append(f"| {r['chain']} | {r['questions']} | {r['chains']} | "
                         f"{r['stopped_early']:.2f} | "
                         f"{r['answer_forced']:.2f} | {'' if plain is None else f'{plain:.3f}'} | "
                         f"{r['first_stop_acc']:.3f}{vs} | {r['final_acc']:.3f} | "
                         f"{r['final_minus_first']:+.3f} {_ci(r['diff_ci'])} |")
    return "\n".join(lines) + "\n"


def plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for r in summary["per_model"]:
        if r["samples"] > 1:
            ks = np.arange(1, len(r["maj_at_k"]) + 1)
            a.plot(ks * r["mean_tokens"], r["maj_at_k"], marker="o", ms=3,
                   label=f"{r['model']} {r['mode']} maj@k")
    for r in summary["parallel_vs_chain"]:
        a.errorbar([r["chain_tokens"]], [r["chain_acc"]],
                   yerr=[[r["chain_acc"] - r["chain_ci"][0]], [r["chain_ci"][1] - r["chain_acc"]]],
                   marker="s", capsize=3, label=f"one {r['chain']}")
    a.set_xscale("log")
    a.set_xlabel("mean generated tokens per question")
    a.set_ylabel("accuracy")
    a.set_title("parallel votes vs one chain")
    a.legend(fontsize=7, loc="lower right")
    for r in summary["per_model"]:
        b.plot(np.arange(1, len(r["pass_at_k"]) + 1), r["pass_at_k"], marker=".",
               label=f"{r['model']} {r['mode']}")
    b.set_xlabel("k")
    b.set_ylabel("pass@k")
    b.set_title("pass@k")
    b.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
