"""bench/drift.py's files from its summary and runs: summary.json, drift.csv (cumulative and
rolling curves every 25 requests), drift.md (the table) and drift.png (one row per stream)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

STEP = 25
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


def table(summary: dict[str, Any]) -> str:
    lines = ["| stream | deployment | post-shift loss vs top (points) | cost share (audits incl.) "
             "| post-shift accuracy | pre-shift accuracy | audit rate | requests to alarm "
             "| false alarms | moves |", "|" + "---|" * 10]
    for name, entry in summary.items():
        if not isinstance(entry, dict) or "guarded" not in entry:
            continue
        for dep in DEPLOYMENTS:
            m = entry[dep]
            alarm = m.get("requests_to_alarm", "")
            lines.append(
                f"| {name} | {dep} | {100 * m['post_shift_loss_vs_top']:.2f} | "
                f"{m['cost_share']:.3f} | {m['post_shift_accuracy']:.4f} | "
                f"{m['pre_shift_accuracy']:.4f} | "
                f"{'' if 'audit_rate' not in m else format(m['audit_rate'], '.4f')} | "
                f"{'never' if dep == 'guarded' and alarm is None else alarm if alarm != '' else ''}"
                f" | {'' if 'false_alarms' not in m else format(m['false_alarms'], '.2f')} | "
                f"{'' if 'moves' not in m else format(m['moves'], '.2f')} |")
    return "\n".join(lines)


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
            row[0].plot(x, [r["rolling_accuracy"] for r in mine], label=dep, lw=1)
            row[1].plot(x, [r["cumulative_cost_share"] for r in mine], label=dep, lw=1)
        events = run["deployments"]["guarded"]["events"]
        for ax in row:
            ax.axvline(run["shift"], color="k", ls="--", lw=0.8, label="shift")
            for e in events:
                ax.axvline(e["request"], color={"alarm": "r", "safer": "m"}.get(e["event"], "g"),
                           lw=0.5, alpha=0.6)
            ax.set_xlabel("request")
            ax.legend(fontsize=7)
        row[0].set_ylabel(f"accuracy, last {ROLL} requests")
        row[0].set_title(f"{name} (run 0): red alarm, magenta safer, green cheaper")
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
        f"Audit rate setting {summary.get('audit_rate_setting')}; means over runs "
        f"(requests to alarm: median).\n\n{table(summary)}\n"
        + ("\nSkipped:\n" + "\n".join(skipped) + "\n" if skipped else ""))
