"""What a sweep measured: one `SweepRow` per plan and budget, gathered in a `SweepResult`
with its lookups (row, curve) and derived measures (best fixed plan, gap closed to the oracle,
tokens-to-match, AUC, dominance, a JSON summary), computed with `tts.measures`.

`report()` hands these to `tts.sweep.report` as plain data, which formats the markdown, the plot
and the terminal tables; `write()` writes the files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from tts.errors import ValidationError
from tts.measures import TokensToMatch, area_under_curve, gap_closed, tokens_to_match
from tts.sweep.plans import VOTE_AT
from tts.sweep.rows import SweepRow, fmt_budget, human, write_csv

__all__ = ["SweepRow", "SweepResult"]


@dataclass
class SweepResult:
    """Everything a sweep measured, in budget order then plan order."""

    rows: list[SweepRow]
    budgets: tuple[float, ...]
    names: tuple[str, ...]
    """Plan names in report order (oracle last)."""
    models: tuple[str, ...]
    bank_name: str
    n_questions: int
    total_questions: int
    heldout: bool
    """True when only questions outside the policy's training split were evaluated."""
    seeds: tuple[int, ...]
    bootstrap: int
    config_key: str
    elapsed: float = 0.0
    resumed_budgets: tuple[float, ...] = ()
    unavailable: Mapping[str, str] = field(default_factory=dict)
    """Plan name -> why the bank cannot run it."""
    unit: str = ""
    notes: list[str] = field(default_factory=list)
    """Things the run repaired and the user should know (e.g. a torn checkpoint line)."""

    # ---- lookups -------------------------------------------------------------------------
    def row(self, budget: float, name: str) -> SweepRow:
        for r in self.rows:
            if r.budget == budget and r.strategy == name:
                return r
        raise KeyError(f"no row for {name!r} at budget {budget:g}.")

    def curve(self, name: str) -> dict[str, np.ndarray]:
        """Arrays over budgets for one plan: budget, accuracy, ci_low, ci_high, spend."""
        rows = [self.row(b, name) for b in self.budgets]
        return {"budget": np.array(self.budgets, dtype=float),
                "accuracy": np.array([r.accuracy for r in rows]),
                "ci_low": np.array([r.ci_low for r in rows]),
                "ci_high": np.array([r.ci_high for r in rows]),
                "spend": np.array([r.spend_mean for r in rows])}

    @property
    def available_names(self) -> tuple[str, ...]:
        return tuple(n for n in self.names if n not in self.unavailable)

    @property
    def fixed_names(self) -> tuple[str, ...]:
        return tuple(n for n in self.available_names if self.kind(n) == "fixed")

    def kind(self, name: str) -> str:
        """"fixed", "policy" or "oracle"."""
        return next(r.kind for r in self.rows if r.strategy == name)

    @property
    def split_note(self) -> str:
        """Which questions were evaluated, for every output."""
        if self.heldout:
            return (f"held-out: {self.n_questions} of {self.total_questions} questions, none "
                    f"seen by the policy in training")
        return (f"all {self.n_questions} questions of the bank (no held-out split given; "
                f"a policy tuned on this bank would be scored on its training data)")

    # ---- derived measures ----------------------------------------------------------------
    def best_fixed(self) -> np.ndarray:
        """Per budget, the highest accuracy of any fixed strategy."""
        fixed = self.fixed_names
        if not fixed:
            return np.full(len(self.budgets), math.nan)
        return np.max([self.curve(n)["accuracy"] for n in fixed], axis=0)

    def gap_closed(self, name: str = "policy") -> np.ndarray:
        """Per budget: (name - best fixed) / (oracle - best fixed); NaN where there is no gap."""
        return gap_closed(self.curve(name)["accuracy"], self.best_fixed(),
                          self.curve("oracle")["accuracy"])

    def peak_name(self, names: Iterable[str]) -> str:
        """Among `names`, the plan with the highest peak accuracy (cheapest on ties)."""
        best, best_key = None, None
        for n in names:
            c = self.curve(n)
            i = int(np.nanargmax(c["accuracy"]))
            key = (c["accuracy"][i], -c["spend"][i])
            if best_key is None or key > best_key:
                best, best_key = n, key
        if best is None:
            raise ValidationError("no available plan to compare against.")
        return best

    def tokens_to_match(self, reference: str = "best-fixed", candidate: str = "policy", *,
                        measure: str = "spend") -> TokensToMatch:
        """Spend (`measure="spend"`) or budget (`"budget"`) `candidate` needs to reach the peak
        accuracy of `reference`: a plan name, "best-fixed" (the fixed strategy with the
        highest peak) or "best-vote" (the best vote@N, i.e. fixed-N self-consistency)."""
        if measure not in ("spend", "budget"):
            raise ValidationError(f"`measure` must be 'spend' or 'budget', got {measure!r}.",
                                  parameter="measure", value=measure)
        if reference == "best-fixed":
            reference = self.peak_name(self.fixed_names)
        elif reference == "best-vote":
            reference = self.peak_name([n for n in self.fixed_names if VOTE_AT.match(n)])
        ref, cand = self.curve(reference), self.curve(candidate)
        return tokens_to_match(ref[measure], ref["accuracy"], cand[measure], cand["accuracy"])

    def dominates(self, name: str = "policy", *, atol: float = 0.0) -> bool:
        """Whether `name`'s accuracy is >= every fixed strategy's at every budget (within
        `atol`)."""
        mine = self.curve(name)["accuracy"]
        return all(bool(np.all(mine + atol >= self.curve(f)["accuracy"]))
                   for f in self.fixed_names if f != name)

    def summary(self, name: str = "policy") -> dict[str, Any]:
        """The derived measures of `name` as plain data (for JSON reports)."""
        def num(x: float) -> float | None:
            return float(x) if math.isfinite(x) else None

        out: dict[str, Any] = {"plan": name, "questions": self.n_questions,
                               "heldout": self.heldout, "seeds": len(self.seeds),
                               "budgets": list(self.budgets),
                               "accuracy": [num(a) for a in self.curve(name)["accuracy"]],
                               "auc": self.auc(name)}
        if self.fixed_names:
            for ref in ("best-fixed", "best-vote"):
                if ref == "best-vote" and not any(VOTE_AT.match(n) for n in self.fixed_names):
                    continue
                for measure in ("spend", "budget"):
                    t = self.tokens_to_match(ref, name, measure=measure)
                    out[f"tokens_to_match_{ref.replace('-', '_')}_{measure}"] = {
                        "target": t.target, "reference": num(t.reference_spend),
                        "candidate": num(t.candidate_spend), "ratio": num(t.ratio)}
            out["dominates_all_fixed"] = self.dominates(name)
        if "oracle" in self.available_names and self.fixed_names:
            gaps = self.gap_closed(name)
            out["gap_closed"] = [num(g) for g in gaps]
            finite = gaps[np.isfinite(gaps)]
            out["gap_closed_min"] = float(finite.min()) if len(finite) else None
        return out

    def auc(self, name: str) -> float:
        """Normalised area under `name`'s accuracy-vs-budget curve (log budget axis)."""
        c = self.curve(name)
        return area_under_curve(c["budget"], c["accuracy"])

    def derived_lines(self) -> list[str]:
        """Tokens-to-match, gap closed and AUC as short sentences (markdown and terminal)."""
        lines = []
        names = self.available_names
        if "policy" in names and self.fixed_names:
            for ref, label in (("best-fixed", "best fixed strategy"),
                               ("best-vote", "best fixed-N vote")):
                if ref == "best-vote" and not any(VOTE_AT.match(n) for n in self.fixed_names):
                    continue
                ref_name = self.peak_name(self.fixed_names if ref == "best-fixed" else
                                          [n for n in self.fixed_names if VOTE_AT.match(n)])
                for measure in ("spend", "budget"):
                    t = self.tokens_to_match(ref, "policy", measure=measure)
                    what = "mean spend" if measure == "spend" else "budget"
                    head = (f"Tokens-to-match ({what}) vs {label} {ref_name} (peak "
                            f"{t.target:.3f} at {human(t.reference_spend)}): policy ")
                    lines.append(head + (f"reaches it at {human(t.candidate_spend)}, ratio "
                                         f"{t.ratio:.2f}x." if t.reached else
                                         "never reaches it on this grid."))
        if lines:
            lines.append("Budget-based ratios move a lot on plateaus: a reference that gains "
                         "0.001 at a larger budget counts as reaching its peak only there.")
        if "policy" in names and "oracle" in names and self.fixed_names:
            gaps = self.gap_closed("policy")
            parts = [f"{fmt_budget(b)}: {'n/a' if not math.isfinite(g) else f'{g:.2f}'}"
                     for b, g in zip(self.budgets, gaps)]
            lines.append("Gap closed to the oracle, (policy - best fixed) / (oracle - best "
                         "fixed), per budget: " + ", ".join(parts) + ".")
        aucs = [f"{n} {self.auc(n):.3f}" for n in names]
        lines.append("Area under accuracy vs log-budget (normalised to [0, 1]): "
                     + ", ".join(aucs) + ".")
        return lines

    # ---- outputs -------------------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        """What the markdown, plot and terminal tables show, as plain data: the settings, one
        entry per available plan (its curve, its row at its best budget, AUC, and for the
        policy and oracle the fixed plans whose curve it equals) and the derived sentences."""
        names = self.available_names
        curves = {n: self.curve(n) for n in names}
        plans = []
        for n in names:
            c = curves[n]
            same = [] if self.kind(n) == "fixed" else [
                m for m in self.fixed_names if np.array_equal(curves[m]["accuracy"],
                                                              c["accuracy"])
                and np.array_equal(curves[m]["spend"], c["spend"])]
            plans.append({"name": n, "kind": self.kind(n), "curve": c, "auc": self.auc(n),
                          "best": self.row(self.budgets[int(np.nanargmax(c["accuracy"]))], n),
                          "same_as": same})
        return {"bank": self.bank_name, "split_note": self.split_note, "heldout": self.heldout,
                "questions": self.n_questions, "total_questions": self.total_questions,
                "seeds": list(self.seeds), "bootstrap": self.bootstrap, "unit": self.unit,
                "elapsed": self.elapsed, "resumed": len(self.resumed_budgets),
                "unavailable": dict(self.unavailable), "budgets": list(self.budgets),
                "models": list(self.models), "plans": plans, "derived": self.derived_lines()}

    def write(self, out: str | Path, *, command: str | None = None,
              stem: str = "sweep") -> dict[str, Path]:
        """Write `<stem>.csv`, `<stem>.png` and `<stem>.md` into folder `out`."""
        from tts.sweep.report import markdown, plot

        root = Path(out)
        root.mkdir(parents=True, exist_ok=True)
        paths = {"csv": root / f"{stem}.csv", "png": root / f"{stem}.png",
                 "md": root / f"{stem}.md"}
        write_csv(paths["csv"], self.rows, self.models, self.csv_context(), mode="w")
        data = self.report()
        plot(data, paths["png"])
        paths["md"].write_text(markdown(data, command=command, png=paths["png"].name),
                               encoding="utf-8")
        return paths

    def csv_context(self) -> dict[str, str]:
        """The columns every CSV row of this sweep repeats (settings key, questions, seeds)."""
        return {"config": self.config_key,
                "questions": (f"held-out {self.n_questions}/{self.total_questions}"
                              if self.heldout else f"all {self.n_questions}"),
                "seeds": str(len(self.seeds))}
