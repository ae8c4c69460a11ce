"""bench/drift.py's files from its summary and runs: summary.json, drift.csv (cumulative and
rolling curves every 100 requests), drift.md (the table) and drift.png (one row per stream)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

STEP = 100
ROLL = 250
DEPLOYMENTS = ("static", "guarded", "top")


def curve_rows(name: str, run: dict[str, Any]) -> list[dict[str, Any]]:
    """Every STEP requests: per deployment the cumulative and rolling accuracy and the
    cumulative cost share of the top model alone (audits included), and the guarded plan."""
    deps = run["deployments"]
    top_cost = np.cumsum(deps["top"]["cost"])
    rows = []
    for dep in DEPLOYMENTS:
        d = deps[dep]
        ok = np.asarray(d["correct"], float)
        cum_ok = np.cumsum(ok)
        spent = np.cumsum(d["cost"]) + np.asarray(d.get("audit_spent", np.zeros(len(ok))))
        for i in range(STEP - 1, len(ok), STEP):
            lo = max(0, i + 1 - ROLL)
            rows.append({"stream": name, "run": run["run"], "deployment": dep, "request": i + 1,
                         "after_shift": i + 1 > run["shift"],
                         "cumulative_accuracy": round(cum_ok[i] / (i + 1), 5),
                         "rolling_accuracy": round(float(ok[lo:i + 1].mean()), 5),
                         "cumulative_cost_share": round(float(spent[i] / top_cost[i]), 5),
                         "plan": d["plan"][i] if "plan" in d else ""})
    return rows


TARGETS = (("post_shift_loss_vs_top", "guarded post-shift loss vs top <= 1 point", 0.01),
           ("cost_share", "guarded total cost (audits included) <= 60% of top-model-only", 0.6),
           ("audit_rate", "audits per request <= 5%", 0.05),
           ("requests_to_alarm", "alarm within 500 requests of the shift", 500))


def targets(summary: dict[str, Any]) -> str:
    """One line per stream and target: the measured number (mean over splits and runs;
    requests to alarm: median) and whether it is met."""
    lines = []
    for name, entry in summary.items():
        if not isinstance(entry, dict) or "guarded" not in entry:
            continue
        for key, what, limit in TARGETS:
            got = entry["guarded"].get(key)
            met = got is not None and round(got, 9) <= limit
            shown = "never" if got is None else f"{100 * got:.2f} points" if key.startswith(
                "post") else f"{got:.3f}" if key != "requests_to_alarm" else f"{got:g}"
            per = [sp["guarded"].get(key) for sp in entry.get("splits", [])]
            each = "" if len(per) < 2 else "; per split: " + ", ".join(
                "never" if v is None else f"{100 * v:.2f}" if key.startswith("post") else
                f"{v:.3f}" if key != "requests_to_alarm" else f"{v:g}" for v in per)
            lines.append(f"- {name}: {what}: {shown} ({'met' if met else 'NOT met'}{each}); "
                         f"static: {_static(entry, key)}")
    return "\n".join(lines)


def _static(entry: dict[str, Any], key: str) -> str:
    got = entry["static"].get(key)
    if got is None:
        return "-"
    return f"{100 * got:.2f} points" if key.startswith("post") else f"{got:.3f}"


def tuned(summary: dict[str, Any]) -> str:
    """Per stream and split: what the tune on set A expected, and its frontier."""
    lines = []
    for name, entry in summary.items():
        for sp in entry.get("splits", []) if isinstance(entry, dict) else []:
            e = sp["expected"]
            front = ", ".join(f"{f['name']} (disagreement {f['disagreement']:.3f}, cost "
                              f"{f['cost_share']:.2f})" for f in sp["frontier"]) or "none"
            nov = sp.get("novelty")
            front += "; novelty: none" if nov is None else \
                f"; novelty: {nov['centroids']} centroids, threshold {nov['threshold']:.3f}, " \
                f"expected novel share {nov['expected']:.3f}"
            lines.append(f"- {name} split {sp['split']}: set A {len(sp['groups']['a'])} groups "
                         f"({sp['questions']['a']} questions), B {len(sp['groups']['b'])} "
                         f"({sp['questions']['b']}); expected disagreement {e['disagreement']:.3f}"
                         f", accuracy {_num(e.get('accuracy'))}, cost share "
                         f"{_num(e.get('cost_share'))}; frontier: {front}")
    return "\n".join(lines)


def _num(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}"


def table(summary: dict[str, Any]) -> str:
    lines = ["| stream | deployment | post-shift loss vs top (points) | cost share (audits incl.) "
             "| post-shift accuracy | pre-shift accuracy | audit rate | requests to alarm "
             "(novelty / audit) | false alarms (novelty / audit) | moves | disagreement with "
             "top, pre -> post shift |",
             "|" + "---|" * 11]
    rows = []
    for name, entry in summary.items():
        if isinstance(entry, dict) and "guarded" in entry:
            rows.append((name, entry))
            rows += [(f"{name} split {sp['split']}", sp) for sp in entry.get("splits", [])
                     if len(entry["splits"]) > 1]
    for name, entry in rows:
        for dep in DEPLOYMENTS:
            m = entry[dep]
            alarms = false = ""
            if dep == "guarded":
                alarms = " / ".join(_wait(m.get(f"requests_to_{k}alarm")) for k in (
                    "", "novelty_", "audit_"))
                alarms = alarms.replace(" / ", " (", 1) + ")"
                false = f"{m['false_alarms']:.2f} ({m.get('false_novelty_alarms', 0):.2f} / " \
                        f"{m.get('false_audit_alarms', m['false_alarms']):.2f})"
            lines.append(
                f"| {name} | {dep} | {100 * m['post_shift_loss_vs_top']:.2f} | "
                f"{m['cost_share']:.3f} | {m['post_shift_accuracy']:.4f} | "
                f"{m['pre_shift_accuracy']:.4f} | "
                f"{'' if 'audit_rate' not in m else format(m['audit_rate'], '.4f')} | "
                f"{alarms} | {false} | "
                f"{'' if 'moves' not in m else format(m['moves'], '.2f')} | "
                f"{m['pre_shift_disagreement']:.3f} -> {m['post_shift_disagreement']:.3f} |")
    return "\n".join(lines)


def _wait(v: Any) -> str:
    return "never" if v is None else f"{v:g}"


def plot(curves: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(curves)
    fig, axes = plt.subplots(len(names), 2, figsize=(11, 3.4 * len(names)), squeeze=False)
    for row, name in zip(axes, names):
        run = curves[name][0]
        rows = curve_rows(name, run)
        for dep in DEPLOYMENTS:
            mine = [r for r in rows if r["deployment"] == dep]
            x = [r["request"] for r in mine]
            style = {"ls": ":" if dep == "static" else "-", "lw": 1.6 if dep == "static" else 1}
            row[0].plot(x, [r["rolling_accuracy"] for r in mine], label=dep, **style)
            row[1].plot(x, [r["cumulative_cost_share"] for r in mine], label=dep, **style)
        events = run["deployments"]["guarded"]["events"]
        for ax in row:
            ax.axvline(run["shift"], color="k", ls="--", lw=0.8, label="shift")
            for e in events:
                color = {"alarm": "r", "novelty alarm": "orange", "safer": "m",
                         "cheaper": "g"}.get(e["event"])
                if color:
                    ax.axvline(e["request"], color=color, lw=0.5, alpha=0.6)
            ax.set_xlabel("request")
            ax.legend(fontsize=7)
        row[0].set_ylabel(f"accuracy, last {ROLL} requests")
        row[0].set_title(f"{name} (run 0): red audit alarm, orange novelty alarm, magenta "
                         f"safer, green cheaper", fontsize=9)
        row[1].set_ylabel("cumulative cost / top model alone")
        row[1].set_title(f"{name}: cost share, audits included")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(summary: dict[str, Any], curves: dict[str, Any], out: Path) -> None:
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    rows = [r for name, runs in curves.items() for run in runs for r in curve_rows(name, run)]
    if rows:
        with open(out / "drift.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        plot(curves, out / "drift.png")
    skipped = [f"- {name}: {e['skipped']}" for name, e in summary.items()
               if isinstance(e, dict) and "skipped" in e]
    (out / "drift.md").write_text(
        f"# Drift: static vs audited + guarded ({summary.get('command', '')})\n\n"
        f"Audit rate setting {summary.get('audit_rate_setting')}; means over every split and "
        f"run of a stream (requests to alarm: median; never: no alarm after the shift), each "
        f"split's beside them. Alarms: either signal, then the novelty alarm (served prompts "
        f"unlike the tuning questions, no labels or audits) and the audit alarm (disagreement "
        f"with the top model above the expected rate); the guard moves one plan safer on an "
        f"audit alarm and to the frontier's safest plan (the top model alone) on a novelty "
        f"alarm. Loss in accuracy points (top model's post-shift accuracy minus "
        f"the deployment's); cost share: of the top model alone on the same requests, audits "
        f"included.\n\n{table(summary)}\n\n## Targets (issue 25), measured\n\n"
        f"{targets(summary)}\n\n## Tuned on set A (cross-fitted expectations)\n\n"
        f"{tuned(summary)}\n"
        + ("\nSkipped:\n" + "\n".join(skipped) + "\n" if skipped else ""))
