"""Budget sweeps: accuracy and spend of every fixed strategy, the policy and the oracle.

For each budget of a grid, every plan runs on every question of a bank under that budget,
over several seeded sample orders (replay, so the generations are real and the run is exact).
A plan that cannot pay for its cheapest step answers nothing ("insufficient_budget"): it
counts as wrong and costs 0. Accuracy gets a 95% bootstrap interval from resampling
(question, seed) pairs; spend is reported as mean and p95, in total and per model.

The per-question oracle picks, for each (question, seed), the cheapest evaluated plan that is
correct in hindsight at that budget (or the cheapest plan when none is): an upper bound on
any policy choosing among the evaluated plans.

Rows are appended to a checkpoint CSV one budget at a time, so an interrupted sweep resumes
where it stopped and, being seeded, ends with the same numbers as an uninterrupted one.

    >>> from tts.sweep import run_sweep
    >>> result = run_sweep(None, [512, 4096, 131072], seeds=2, progress=False)
    >>> result.row(4096, "vote@8").accuracy  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

from tts.budgets import check_budget
from tts.errors import BankError, UnknownNameError, ValidationError

if TYPE_CHECKING:
    import argparse

    from tts.bank import SampleBank
    from tts.policy import Policy
    from tts.strategies import Strategy

__all__ = ["run_sweep", "SweepResult", "SweepRow", "TokensToMatch", "DEFAULT_BUDGETS",
           "check_budgets", "parse_budgets", "read_heldout", "tokens_to_match", "gap_closed",
           "area_under_curve", "markdown", "plot", "print_table", "derived_lines", "add_cli",
           "check_writable"]

DEFAULT_BUDGETS: tuple[float, ...] = tuple(float(2 ** k) for k in range(9, 20))
"""512 .. 524288 units, doubling: from one small-model sample reservation (512 tokens) to
four large-model calls on the MoT bank (one GPT-4 call reserves 512 x 240 = 122,880)."""

VOTE_SIZES = (1, 2, 4, 8, 16, 32, 64, 128)
FIXED_NAMES = ("vote", "chain", "escalate", "cascade")
"""Fixed strategies besides vote@N, run with their defaults (capped to what the bank holds)."""
FORMAT = "tts-sweep/1"

_VOTE_AT = re.compile(r"^vote@(\d+)$")
_ESCALATE_AT = re.compile(r"^escalate@(\d+)$")


# ---- results ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SweepRow:
    """One plan at one budget."""

    budget: float
    strategy: str
    """"vote@N", "vote", "chain", "escalate", "cascade", a custom name, "policy" or "oracle"."""
    kind: str
    """"fixed", "policy" or "oracle"."""
    available: bool
    """False when the bank cannot run the plan (e.g. chain without chain samples)."""
    accuracy: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    spend_mean: float = math.nan
    """Mean units spent per question (0 for questions the budget could not pay for)."""
    spend_p95: float = math.nan
    spend_by_model: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    """model -> (mean, p95) units spent on that model's tokens."""
    escalated: float = math.nan
    """Share of (question, seed) pairs that asked the large model."""
    insufficient: float = math.nan
    """Share of (question, seed) pairs the budget could not pay any step of."""
    gap_closed: float = math.nan
    """Policy rows: (policy - best fixed) / (oracle - best fixed) at this budget."""
    note: str = ""


@dataclass(frozen=True, slots=True)
class TokensToMatch:
    """How much a candidate spends to reach a reference curve's peak accuracy."""

    target: float
    """The reference's peak accuracy."""
    reference_spend: float
    """Spend (or budget) at which the reference first reaches its peak."""
    candidate_spend: float
    """Spend (or budget) at which the candidate first reaches the target (log-linear
    interpolation between sweep points); NaN when it never does."""

    @property
    def ratio(self) -> float:
        """reference_spend / candidate_spend: how many times fewer tokens the candidate needs
        (NaN when it never matches)."""
        if not math.isfinite(self.candidate_spend) or self.candidate_spend <= 0:
            return math.nan
        return self.reference_spend / self.candidate_spend

    @property
    def reached(self) -> bool:
        return math.isfinite(self.candidate_spend)


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
        return tuple(n for n in self.available_names if self._kind(n) == "fixed")

    def _kind(self, name: str) -> str:
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
            reference = self.peak_name([n for n in self.fixed_names if _VOTE_AT.match(n)])
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
                if ref == "best-vote" and not any(_VOTE_AT.match(n) for n in self.fixed_names):
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

    # ---- outputs -------------------------------------------------------------------------
    def write(self, out: str | Path, *, command: str | None = None,
              stem: str = "sweep") -> dict[str, Path]:
        """Write `<stem>.csv`, `<stem>.png` and `<stem>.md` into folder `out`."""
        root = Path(out)
        root.mkdir(parents=True, exist_ok=True)
        paths = {"csv": root / f"{stem}.csv", "png": root / f"{stem}.png",
                 "md": root / f"{stem}.md"}
        _write_csv(paths["csv"], self.rows, self.models, self._csv_context(), mode="w")
        plot(self, paths["png"])
        paths["md"].write_text(markdown(self, command=command, png=paths["png"].name),
                               encoding="utf-8")
        return paths

    def _csv_context(self) -> dict[str, str]:
        return {"config": self.config_key,
                "questions": (f"held-out {self.n_questions}/{self.total_questions}"
                              if self.heldout else f"all {self.n_questions}"),
                "seeds": str(len(self.seeds))}


# ---- derived measures (public: the tuner imports them) ------------------------------------
def tokens_to_match(reference_spend: Sequence[float], reference_accuracy: Sequence[float],
                    candidate_spend: Sequence[float],
                    candidate_accuracy: Sequence[float]) -> TokensToMatch:
    """Spend the candidate needs to reach the reference's peak accuracy.

    Both curves are given in budget order. The reference spend is where the reference first
    reaches its peak. The candidate spend is where its curve first reaches that accuracy,
    interpolated linearly in log spend between the two sweep points around the crossing (no
    extrapolation: NaN when it never gets there). `ratio` is reference / candidate spend.
    """
    rs, ra = _pair(reference_spend, reference_accuracy, "reference")
    cs, ca = _pair(candidate_spend, candidate_accuracy, "candidate")
    ok = np.isfinite(ra) & np.isfinite(rs)
    if not ok.any():
        raise ValidationError("the reference curve has no finite points.", parameter="reference")
    target = float(np.max(ra[ok]))
    ref_spend = float(rs[ok][int(np.argmax(ra[ok] >= target))])
    cand = math.nan
    prev: tuple[float, float] | None = None
    for s, a in zip(cs, ca):
        if not (math.isfinite(s) and math.isfinite(a)):
            continue
        if a >= target:
            cand = float(s)
            if prev is not None and prev[0] > 0 and s > 0 and a > prev[1]:
                frac = (target - prev[1]) / (a - prev[1])
                lo, hi = math.log(prev[0]), math.log(s)
                cand = float(math.exp(lo + frac * (hi - lo)))
            break
        prev = (float(s), float(a))
    return TokensToMatch(target, ref_spend, cand)


def gap_closed(policy_accuracy: Sequence[float] | float,
               best_fixed_accuracy: Sequence[float] | float,
               oracle_accuracy: Sequence[float] | float) -> np.ndarray:
    """(policy - best fixed) / (oracle - best fixed), element-wise.

    1 means the policy matches the oracle, 0 the best fixed strategy, negative is worse than
    it. NaN where the oracle is no better than the best fixed strategy (no gap to close).
    """
    p, b, o = (np.asarray(x, dtype=float) for x in (policy_accuracy, best_fixed_accuracy,
                                                     oracle_accuracy))
    gap = o - b
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(gap > 1e-12, (p - b) / np.where(gap > 1e-12, gap, 1.0), np.nan)


def area_under_curve(budgets: Sequence[float], accuracy: Sequence[float]) -> float:
    """Area under accuracy vs log(budget), divided by the log-budget range.

    The result is the curve's mean accuracy over the grid on a log axis, in [0, 1], and
    comparable across plans swept on the same grid. One budget gives that point's accuracy.
    """
    x, y = _pair(budgets, accuracy, "curve")
    if len(x) == 0 or not np.all(np.isfinite(y)) or np.any(x <= 0):
        raise ValidationError("area_under_curve needs positive budgets and finite accuracies.",
                              parameter="accuracy")
    if len(x) == 1:
        return float(y[0])
    lx = np.log(x)
    if np.any(np.diff(lx) <= 0):
        raise ValidationError("area_under_curve needs strictly increasing budgets.",
                              parameter="budgets")
    return float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(lx)) / (lx[-1] - lx[0]))


def _pair(x: Sequence[float], y: Sequence[float], what: str) -> tuple[np.ndarray, np.ndarray]:
    xa, ya = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if xa.shape != ya.shape:
        raise ValidationError(f"the {what} spend and accuracy arrays differ in length "
                              f"({len(xa)} vs {len(ya)}).", parameter=what)
    return xa, ya


# ---- input checks --------------------------------------------------------------------------
def check_budgets(budgets: Iterable[float]) -> tuple[float, ...]:
    """The budgets as floats, if they are a non-empty, strictly increasing list of valid
    budgets; else a ValidationError naming the first problem."""
    if isinstance(budgets, (str, bytes)) or not isinstance(budgets, Iterable):
        raise ValidationError(f"`budgets` must be a list of numbers, got {budgets!r}.",
                              parameter="budgets", value=budgets)
    items = list(budgets)
    if not items:
        raise ValidationError("`budgets` must list at least one budget, got an empty list.",
                              parameter="budgets", value=items)
    out = tuple(check_budget(b, f"budgets[{i}]") for i, b in enumerate(items))
    for i in range(1, len(out)):
        if out[i] <= out[i - 1]:
            word = "repeats" if out[i] == out[i - 1] else "comes after"
            raise ValidationError(f"`budgets` must be strictly increasing: {out[i]:g} {word} "
                                  f"{out[i - 1]:g} (position {i}); sort them and drop "
                                  f"duplicates.", parameter="budgets", value=items)
    return out


def parse_budgets(text: str) -> tuple[float, ...]:
    """Parse "512,1024,2048" (underscores and 1e5 notation allowed) and check it."""
    parts = [p.strip() for p in str(text).split(",")]
    if not any(parts):
        raise ValidationError("--budgets must list at least one budget, got an empty list.",
                              parameter="budgets", value=text)
    values = []
    for p in parts:
        try:
            v = float(p.replace("_", ""))
        except ValueError:
            raise ValidationError(f"--budgets must be comma-separated numbers, got {p!r} in "
                                  f"{text!r}.", parameter="budgets", value=text) from None
        values.append(int(v) if v.is_integer() else v)
    return check_budgets(values)


def _check_gold(bank: SampleBank) -> None:
    missing = [pid for pid, p in bank.problems.items() if p.gold is None]
    if missing:
        raise BankError(f"bank {bank.meta.name!r} has no gold answer for {len(missing)} of "
                        f"{len(bank.problems)} problems (e.g. {missing[0]!r}); a sweep scores "
                        f"answers against gold, so it needs them all.")


# ---- plans ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Entry:
    name: str
    kind: str  # fixed | policy | oracle
    plan: Any = None  # Strategy, Policy or None
    unavailable: str = ""

    def describe(self) -> Any:
        if self.kind == "oracle" or self.unavailable:
            return self.unavailable or "oracle"
        if self.kind == "policy":
            return _describe_policy(self.plan)
        return [self.plan.name, self.plan.options()]


def _bank_size(bank: SampleBank, role: str, mode: str) -> int:
    """Samples of (role's model, mode) every question has (0 when some question has none)."""
    model = bank.meta.roles.get(role)
    sizes = []
    for pid in bank.problems:
        rec = bank.records.get((pid, model, mode))
        sizes.append(len(rec.samples) if rec is not None else 0)
    return min(sizes) if sizes else 0


def _bank_votes(bank: SampleBank) -> int:
    """Small-model samples every question has (0 when some question has none)."""
    return _bank_size(bank, "small", "sample")


def _has(bank: SampleBank, role: str, mode: str) -> bool:
    model = bank.meta.roles.get(role)
    return model is not None and all((pid, model, mode) in bank.records for pid in bank.problems)


def _default_names(bank: SampleBank) -> list[str]:
    fits = _bank_votes(bank)
    sizes = [n for n in VOTE_SIZES if n <= fits]
    if fits and fits not in sizes:
        sizes.append(fits)
    return [f"vote@{n}" for n in sizes] + list(FIXED_NAMES) + ["policy", "oracle"]


def _entries(bank: SampleBank, strategies: Sequence[str] | Mapping[str, Strategy] | None,
             policy: Any) -> list[_Entry]:
    from tts.strategies import Cascade, Chain, Escalate, Strategy, Vote

    fits = _bank_votes(bank)
    small, large = bank.meta.roles.get("small"), bank.meta.roles.get("large")
    if strategies is None:
        names: list[str] = _default_names(bank)
        custom: Mapping[str, Strategy] = {}
    elif isinstance(strategies, Mapping):
        custom = {k: v for k, v in strategies.items() if v is not None}
        for name, s in custom.items():
            if name in ("policy", "oracle"):
                raise ValidationError(f"{name!r} is reserved for the {name}; give a custom "
                                      f"strategy another name.", parameter="strategies",
                                      value=name)
            if not isinstance(s, Strategy):
                raise ValidationError(f"strategy {name!r} must be a Strategy instance, got "
                                      f"{type(s).__name__}.", parameter="strategies")
        names = [str(k) for k in strategies]
        if not names:
            raise ValidationError("`strategies` must name at least one plan, got none.",
                                  parameter="strategies")
    else:
        if isinstance(strategies, str):
            strategies = [strategies]
        names = [str(n) for n in strategies]
        custom = {}
        if not names:
            raise ValidationError("`strategies` must name at least one plan, got none.",
                                  parameter="strategies")
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ValidationError(f"strategy {dup!r} is listed twice.", parameter="strategies",
                              value=dup)
    no_sample = f"bank has no 'sample' records of its small model {small!r} for every question"
    no_large = "bank has no large model" if large is None or large not in bank.models else \
        f"bank has no 'greedy' records of {large!r} for every question"
    has_sample, has_greedy = fits > 0, _has(bank, "large", "greedy")
    cap = min(16, fits) if fits else 16
    entries = []
    for name in names:
        if name in custom:
            entries.append(_Entry(name, "fixed", custom[name]))
            continue
        m = _VOTE_AT.match(name)
        if m:
            n = int(m.group(1))
            if n < 1:
                raise ValidationError(f"{name}: N must be >= 1.", parameter="strategies",
                                      value=name)
            if has_sample and n > fits:
                raise ValidationError(f"{name} needs {n} small-model samples per question, but "
                                      f"bank {bank.meta.name!r} holds {fits}; use N <= {fits}.",
                                      parameter="strategies", value=name)
            entries.append(_Entry(name, "fixed", Vote(max_samples=n, wave=n, confidence=1.0),
                                  "" if has_sample else no_sample))
        elif _ESCALATE_AT.match(name):
            n = int(_ESCALATE_AT.match(name).group(1))
            held = _bank_size(bank, "large", "sample")
            if n < 2 or (held and n > held):
                raise ValidationError(f"{name}: N must be in [2, {held}] (the large model's "
                                      f"samples per question in the bank); plain `escalate` "
                                      f"is one greedy call.", parameter="strategies",
                                      value=name)
            why = "" if held else f"bank has no 'sample' records of its large model {large!r}"
            entries.append(_Entry(name, "fixed", Escalate(samples=n), why))
        elif name == "vote":
            entries.append(_Entry(name, "fixed", Vote(max_samples=cap),
                                  "" if has_sample else no_sample))
        elif name == "adaptive":
            from tts.strategies import Adaptive

            entries.append(_Entry(name, "fixed", Adaptive(max_samples=cap, large=has_greedy),
                                  "" if has_sample else no_sample))
        elif name == "chain":
            why = "" if _has(bank, "small", "chain") else \
                f"bank has no 'chain' samples of {small!r} (build them with `tts bank build --chain-tokens N`)"
            entries.append(_Entry(name, "fixed", Chain(), why))
        elif name == "escalate":
            entries.append(_Entry(name, "fixed", Escalate(), "" if has_greedy else no_large))
        elif name == "cascade":
            why = no_sample if not has_sample else ("" if has_greedy else no_large)
            entries.append(_Entry(name, "fixed", Cascade(max_samples=cap), why))
        elif name == "policy":
            entries.append(_Entry(name, "policy", policy))
        elif name == "oracle":
            continue
        else:
            raise UnknownNameError(
                f"unknown strategy {name!r}; the sweep knows vote@N (N <= {fits}), "
                f"{', '.join(FIXED_NAMES)}, escalate@N (a vote of N large-model samples), "
                f"adaptive, policy and oracle.")
    if not any(e.kind != "oracle" for e in entries):
        raise ValidationError("`strategies` must include at least one plan besides the oracle.",
                              parameter="strategies")
    if "oracle" in names:
        entries.append(_Entry("oracle", "oracle"))
    return entries


def _resolve_policy(policy: Any) -> tuple[Any, list[str] | None, str]:
    """(policy object, its training question ids or None, a description)."""
    from tts.policy import DefaultPolicy

    if policy is None:
        return DefaultPolicy(), None, "DefaultPolicy"
    if isinstance(policy, (str, Path)):
        path = Path(policy)
        if not path.is_file():
            raise ValidationError(f"policy file {path} does not exist.", parameter="policy",
                                  value=str(path))
        try:
            from tts.policy import load_policy
        except ImportError:
            raise ValidationError("this version of tts cannot load policy files "
                                  "(tts.policy.load_policy is missing).",
                                  parameter="policy") from None
        loaded = load_policy(path)
        train = _train_ids(loaded)
        if train is None:
            try:
                train = _train_ids(json.loads(path.read_text(encoding="utf-8")))
            except (json.JSONDecodeError, UnicodeDecodeError):
                train = None
        return loaded, train, f"file {path.name} sha1:{_sha1(path.read_bytes())[:12]}"
    return policy, _train_ids(policy), "object"


_TRAIN_KEYS = ("train_ids", "trained_on", "train_split")


def _train_ids(obj: Any) -> list[str] | None:
    """Training question ids a policy (object or JSON dict) names, if any."""
    for key in _TRAIN_KEYS:
        value = obj.get(key) if isinstance(obj, Mapping) else getattr(obj, key, None)
        if isinstance(value, Mapping):  # e.g. {"train_split": {"ids": [...]}}
            value = value.get("ids", value.get("train"))
        if value is not None and not isinstance(value, (str, bytes)):
            return [str(v) for v in value]
    split = obj.get("split") if isinstance(obj, Mapping) else getattr(obj, "split", None)
    if isinstance(split, Mapping) and split.get("train") is not None:
        return [str(v) for v in split["train"]]
    return None


def _describe_policy(policy: Any) -> Any:
    import dataclasses

    for attr in ("to_dict", "as_dict", "params"):
        fn = getattr(policy, attr, None)
        if callable(fn):
            try:
                return [type(policy).__name__, fn()]
            except TypeError:
                pass
    if dataclasses.is_dataclass(policy) and not isinstance(policy, type):
        return [type(policy).__name__, dataclasses.asdict(policy)]
    return type(policy).__name__


def read_heldout(path: str | Path) -> list[str]:
    """Question ids from a held-out file: a JSON list, a JSON object with `heldout_ids`,
    `heldout`, `test_ids` or `test`, or plain text with one id per line."""
    p = Path(path)
    if not p.is_file():
        raise ValidationError(f"held-out file {p} does not exist.", parameter="heldout",
                              value=str(p))
    text = p.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        ids = [line.strip() for line in text.splitlines() if line.strip()
               and not line.lstrip().startswith("#")]
    else:
        if isinstance(data, Mapping):
            key = next((k for k in ("heldout_ids", "heldout", "test_ids", "test") if k in data),
                       None)
            if key is None:
                raise ValidationError(f"held-out file {p}: a JSON object needs a `heldout_ids` "
                                      f"(or `heldout`, `test_ids`, `test`) list; it has "
                                      f"{sorted(data)}.", parameter="heldout", value=str(p))
            data = data[key]
        if not isinstance(data, list):
            raise ValidationError(f"held-out file {p} must hold a list of question ids.",
                                  parameter="heldout", value=str(p))
        ids = [str(v) for v in data]
    if not ids:
        raise ValidationError(f"held-out file {p} lists no question ids.", parameter="heldout",
                              value=str(p))
    return ids


# ---- evaluation -----------------------------------------------------------------------------
@dataclass
class _Cell:
    """Per (seed, question) outcomes of one plan at one budget."""

    correct: np.ndarray  # bool [S, Q]
    cost: np.ndarray  # float [S, Q]
    spend: dict[str, np.ndarray]  # model -> float [S, Q]
    escalated: np.ndarray  # bool [S, Q]
    insufficient: np.ndarray  # bool [S, Q]


class _Evaluator:
    """Runs one plan on every question of the bank under one budget, for every seed.

    `method="vectorised"` uses `tts.evaluate` (numpy, exact to the replay engine);
    `"solve_many"` drives `Engine.solve_many` once per seed (the code path users run; slower,
    kept as the reference). `"auto"` picks the vectorised path when `tts.evaluate` exists.
    """

    METHODS = ("auto", "vectorised", "solve_many")

    def __init__(self, bank: SampleBank, seeds: Sequence[int], models: Sequence[str],
                 method: str = "auto"):
        if method not in self.METHODS:
            raise ValidationError(f"`method` must be one of {list(self.METHODS)}, got "
                                  f"{method!r}.", parameter="method", value=method)
        self.bank = bank
        self.seeds = tuple(seeds)
        self.models = tuple(models)
        self.problems = [bank.problems[pid] for pid in bank.problem_ids]
        self.prices = {m: bank.meta.cost.of(m).output for m in self.models}
        self._arrays = None
        if method in ("auto", "vectorised"):
            try:
                from tts.evaluate import BankArrays, evaluate
            except ImportError:
                if method == "vectorised":
                    raise
            else:
                try:
                    self._arrays = BankArrays.from_bank(bank)
                except BankError:
                    if method == "vectorised":
                        raise
                    # e.g. non-transitive answer equivalence: only the engine is exact there
                self._evaluate = evaluate
        self.auto = method == "auto"
        self.method = "vectorised" if self._arrays is not None else "solve_many"
        self._engines: dict[tuple[int, int], Any] = {}
        self._correct_cache: dict[tuple[str | None, str], bool] = {}

    def run(self, entry: _Entry, budget: float) -> _Cell:
        if self._arrays is not None:
            try:
                ev = self._evaluate(self._arrays, entry.plan, budget, self.seeds)
            except ValidationError:
                if not self.auto:
                    raise
                # A plan numpy cannot vectorise (a custom Strategy or Policy): the engine can.
                return self._run_engine(entry, budget)
            from tts.evaluate import INSUFFICIENT

            shape = ev.correct.shape
            return _Cell(correct=ev.correct.astype(bool), cost=ev.cost.astype(float),
                         spend={m: ev.tokens[m] * self.prices[m] if m in ev.tokens
                                else np.zeros(shape) for m in self.models},
                         escalated=ev.escalated.astype(bool),
                         insufficient=ev.status == INSUFFICIENT)
        return self._run_engine(entry, budget)

    def _engine(self, seed: int, policy: Any = None):
        from tts.backends.replay import ReplayBackend
        from tts.engine import Engine

        key = (seed, id(policy))
        eng = self._engines.get(key)
        if eng is None:
            small = ReplayBackend(self.bank, self.bank.role_model("small"))
            large_model = self.bank.meta.roles.get("large")
            large = ReplayBackend(self.bank, large_model) if large_model in self.bank.models \
                else None
            eng = self._engines[key] = Engine(small, large, cost=self.bank.meta.cost, seed=seed,
                                              policy=policy)
        return eng

    def _run_engine(self, entry: _Entry, budget: float) -> _Cell:
        from tts.answers import is_correct

        S, Q = len(self.seeds), len(self.problems)
        correct = np.zeros((S, Q), dtype=bool)
        cost = np.zeros((S, Q))
        spend = {m: np.zeros((S, Q)) for m in self.models}
        escalated = np.zeros((S, Q), dtype=bool)
        insufficient = np.zeros((S, Q), dtype=bool)
        for i, seed in enumerate(self.seeds):
            if entry.kind == "policy":
                results = self._engine(seed, entry.plan).solve_many(self.problems, budget)
            else:
                results = self._engine(seed).solve_many(self.problems, budget,
                                                        strategy=entry.plan)
            for j, (problem, r) in enumerate(zip(self.problems, results)):
                key = (r.answer, problem.gold)
                hit = self._correct_cache.get(key)
                if hit is None:
                    hit = self._correct_cache[key] = bool(is_correct(r.answer, problem.gold))
                correct[i, j] = hit
                cost[i, j] = r.cost
                for m, t in r.tokens.items():
                    spend[m][i, j] = t * self.prices[m]
                escalated[i, j] = r.escalated
                insufficient[i, j] = r.status == "insufficient_budget"
        return _Cell(correct, cost, spend, escalated, insufficient)


def _oracle(cells: Sequence[_Cell]) -> _Cell:
    """Per (seed, question): the cheapest correct plan, else the cheapest plan."""
    correct = np.stack([c.correct for c in cells])
    cost = np.stack([c.cost for c in cells])
    pick = np.argmin(np.where(correct, cost, np.inf), axis=0)
    none = ~correct.any(axis=0)
    pick[none] = np.argmin(cost, axis=0)[none]

    def take(arrs: list[np.ndarray]) -> np.ndarray:
        return np.take_along_axis(np.stack(arrs), pick[None], axis=0)[0]

    return _Cell(correct=correct.any(axis=0), cost=take([c.cost for c in cells]),
                 spend={m: take([c.spend[m] for c in cells]) for m in cells[0].spend},
                 escalated=take([c.escalated for c in cells]),
                 insufficient=take([c.insufficient for c in cells]))


def _summarise(budget: float, entry: _Entry, cell: _Cell, boot: tuple[np.ndarray, np.ndarray],
               models: Sequence[str]) -> SweepRow:
    sidx, qidx = boot
    acc = float(cell.correct.mean())
    if len(sidx):
        samples = cell.correct[sidx, qidx].mean(axis=1)
        lo, hi = (float(v) for v in np.percentile(samples, [2.5, 97.5]))
    else:
        lo = hi = acc
    by_model = {m: (float(cell.spend[m].mean()), float(np.percentile(cell.spend[m], 95)))
                for m in models}
    return _rounded(SweepRow(
        budget=budget, strategy=entry.name, kind=entry.kind, available=True, accuracy=acc,
        ci_low=lo, ci_high=hi, spend_mean=float(cell.cost.mean()),
        spend_p95=float(np.percentile(cell.cost, 95)), spend_by_model=by_model,
        escalated=float(cell.escalated.mean()), insufficient=float(cell.insufficient.mean())))


# ---- the sweep ------------------------------------------------------------------------------
def run_sweep(bank: SampleBank | str | Path | None, budgets: Iterable[float], *,
              strategies: Sequence[str] | Mapping[str, Strategy] | None = None,
              policy: Policy | str | Path | None = None, seeds: int | Sequence[int] = 5,
              bootstrap: int = 200, heldout_ids: Iterable[str] | None = None,
              progress: bool = True, checkpoint: str | Path | None = None, resume: bool = True,
              bootstrap_seed: int = 0, method: str = "auto") -> SweepResult:
    """Sweep `budgets` over a bank: every plan, every budget, every seed.

    Args:
        bank: a SampleBank, a bank folder, or None for the bundled MoT GSM8K bank.
        budgets: strictly increasing budgets (small-model token units) per question.
        strategies: plan names to run ("vote@N", "vote", "chain", "escalate", "escalate@N",
            "cascade", "adaptive", "policy", "oracle"; default: vote@1, 2, 4, ... up to what
            the bank holds, vote, chain, escalate, cascade, policy, oracle), or a mapping name ->
            Strategy (a custom fixed plan) or None (the built-in plan of that name). Plans
            the bank cannot run (chain without chain samples) are reported as unavailable.
        policy: a Policy, a tuned policy JSON file, or None for `DefaultPolicy`. A policy
            naming its training split (`train_ids`) is scored only on the other questions.
        seeds: number of seeded sample orders (0..n-1), or the seeds themselves.
        bootstrap: resamples of (question, seed) pairs for the 95% intervals (0: none).
        heldout_ids: evaluate only these questions (say, the split a policy never saw).
        progress: show a rich progress bar on stderr.
        checkpoint: CSV that rows are appended to, one budget at a time; with `resume`, a
            checkpoint from the same settings is read back and its budgets are not re-run.
        bootstrap_seed: seed of the resampling.
        method: "auto" (vectorised `tts.evaluate` when available), "vectorised" or
            "solve_many" (runs `Engine.solve_many` per seed: the reference, slower). Both
            give identical numbers.
    """
    t0 = time.perf_counter()
    grid = check_budgets(budgets)
    seed_list = _check_seeds(seeds)
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, int) or bootstrap < 0:
        raise ValidationError(f"`bootstrap` must be an integer >= 0, got {bootstrap!r}.",
                              parameter="bootstrap", value=bootstrap)
    full = _load(bank)
    policy_obj, train_ids, policy_desc = _resolve_policy(policy)
    heldout = False
    ids = full.problem_ids
    if heldout_ids is not None:
        if isinstance(heldout_ids, (str, bytes)):
            raise ValidationError("`heldout_ids` must be a list of question ids, not a string.",
                                  parameter="heldout_ids", value=heldout_ids)
        wanted = list(dict.fromkeys(str(i) for i in heldout_ids))
        unknown = [i for i in wanted if i not in full.problems]
        if unknown:
            raise BankError(f"{len(unknown)} held-out id(s) are not in bank "
                            f"{full.meta.name!r}, e.g. {unknown[0]!r}.")
        if train_ids is not None and set(wanted) & set(train_ids):
            overlap = sorted(set(wanted) & set(train_ids))
            raise ValidationError(f"{len(overlap)} held-out question(s) are in the policy's "
                                  f"training split, e.g. {overlap[0]!r}.",
                                  parameter="heldout_ids")
        ids, heldout = wanted, True
    elif train_ids is not None:
        seen = set(train_ids)
        ids, heldout = [i for i in full.problem_ids if i not in seen], True
    if not ids:
        raise ValidationError("no questions left to evaluate: the policy's training split "
                              "covers the whole bank.", parameter="heldout_ids")
    sub = full.subset(ids) if heldout else full
    _check_gold(sub)
    entries = _entries(sub, strategies, policy_obj)
    models = tuple(m for m in (sub.meta.roles.get("small"), sub.meta.roles.get("large"))
                   if m is not None and m in sub.models)
    config = {"format": FORMAT, "bank": sub.meta.name, "bank_sha1": _bank_digest(sub),
              "questions": ids if heldout else len(ids), "seeds": list(seed_list),
              "bootstrap": bootstrap, "bootstrap_seed": bootstrap_seed,
              "plans": [[e.name, e.kind, e.describe()] for e in entries], "policy": policy_desc}
    key = _sha1(json.dumps(config, sort_keys=True, default=str).encode())[:16]
    result = SweepResult(rows=[], budgets=grid, names=tuple(e.name for e in entries),
                         models=models, bank_name=sub.meta.name, n_questions=len(ids),
                         total_questions=len(full.problems), heldout=heldout, seeds=seed_list,
                         bootstrap=bootstrap, config_key=key,
                         unavailable={e.name: e.unavailable for e in entries if e.unavailable},
                         unit=f"1 {sub.meta.roles.get('small')} output token")
    done: dict[float, list[SweepRow]] = {}
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if ckpt is not None:
        check_writable(ckpt.parent, [ckpt.name], what="checkpoint folder")
        if resume and ckpt.exists():
            done = _read_checkpoint(ckpt, key, result.names, models, result.notes)
        elif ckpt.exists():
            ckpt.unlink()
    rng = np.random.default_rng(bootstrap_seed)
    boot = (rng.integers(0, len(seed_list), size=(bootstrap, len(ids))),
            rng.integers(0, len(ids), size=(bootstrap, len(ids))))
    evaluator = _Evaluator(sub, seed_list, models, method)
    todo = [b for b in grid if b not in done]
    runnable = [e for e in entries if e.kind != "oracle" and not e.unavailable]
    with _progress(progress, len(todo) * len(runnable)) as advance:
        for budget in grid:
            if budget in done:
                result.rows.extend(done[budget])
                continue
            rows = _sweep_budget(budget, entries, evaluator, boot, models, advance)
            result.rows.extend(rows)
            if ckpt is not None:
                _write_csv(ckpt, rows, models, result._csv_context(), mode="a")
    result.resumed_budgets = tuple(b for b in grid if b in done)
    result.elapsed = time.perf_counter() - t0
    return result


def _sweep_budget(budget: float, entries: Sequence[_Entry], evaluator: _Evaluator,
                  boot: tuple[np.ndarray, np.ndarray], models: Sequence[str],
                  advance) -> list[SweepRow]:
    cells: dict[str, _Cell] = {}
    rows: list[SweepRow] = []
    for e in entries:
        if e.kind == "oracle" or e.unavailable:
            continue
        advance(f"budget {_fmt_budget(budget)}: {e.name}")
        try:
            cells[e.name] = evaluator.run(e, budget)
        except BankError as exc:
            raise BankError(f"{e.name} at budget {_fmt_budget(budget)}: {exc}") from None
    for e in entries:
        if e.unavailable:
            rows.append(SweepRow(budget=budget, strategy=e.name, kind=e.kind, available=False,
                                 note=e.unavailable))
        elif e.kind == "oracle":
            rows.append(_summarise(budget, e, _oracle(list(cells.values())), boot, models))
        else:
            rows.append(_summarise(budget, e, cells[e.name], boot, models))
    fixed = [r.accuracy for r in rows if r.kind == "fixed" and r.available]
    oracle = next((r for r in rows if r.kind == "oracle"), None)
    if fixed and oracle is not None:
        best = max(fixed)
        rows = [_replace(r, gap_closed=float(gap_closed(r.accuracy, best, oracle.accuracy)))
                if r.kind == "policy" and r.available else r for r in rows]
    return [_rounded(r) for r in rows]


class _progress:
    """A rich progress bar on stderr (or nothing); yields an `advance(label)` callable."""

    def __init__(self, enabled: bool, total: int):
        self.enabled, self.total = enabled and total > 0, total
        self._bar = None

    def __enter__(self):
        if not self.enabled:
            return lambda label: None
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn)

        self._bar = Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), TextColumn("{task.description}"),
                             console=Console(stderr=True), transient=True)
        self._bar.start()
        task = self._bar.add_task("", total=self.total)
        first = [True]

        def advance(label: str) -> None:
            if not first[0]:
                self._bar.advance(task)
            first[0] = False
            self._bar.update(task, description=label)

        return advance

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


def _check_seeds(seeds: int | Sequence[int]) -> tuple[int, ...]:
    if isinstance(seeds, bool):
        raise ValidationError(f"`seeds` must be a count >= 1 or a list of ints, got {seeds!r}.",
                              parameter="seeds", value=seeds)
    if isinstance(seeds, int):
        if seeds < 1:
            raise ValidationError(f"`seeds` must be >= 1, got {seeds}.", parameter="seeds",
                                  value=seeds)
        return tuple(range(seeds))
    out = tuple(seeds)
    if not out or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0
                      for s in out) or len(set(out)) != len(out):
        raise ValidationError(f"`seeds` must be distinct integers >= 0, got {seeds!r}.",
                              parameter="seeds", value=seeds)
    return tuple(int(s) for s in out)


def _load(bank: SampleBank | str | Path | None) -> SampleBank:
    from tts.bank import SampleBank, load_bank

    if isinstance(bank, SampleBank):
        return bank
    if bank is None:
        from tts import BUNDLED_BANK

        return load_bank(BUNDLED_BANK)
    if isinstance(bank, (str, Path)):
        return load_bank(bank)
    raise ValidationError(f"`bank` must be a SampleBank or a bank folder, got "
                          f"{type(bank).__name__}.", parameter="bank")


def _bank_digest(bank: SampleBank) -> str:
    h = hashlib.sha1()
    for key in sorted(bank.records):
        rec = bank.records[key]
        gold = bank.problems[key[0]].gold
        h.update(json.dumps([key, gold, rec.prompt_tokens,
                             [[s.answer, s.tokens] for s in rec.samples]]).encode())
    return h.hexdigest()


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


# ---- CSV ------------------------------------------------------------------------------------
_BASE_COLS = ["config", "questions", "seeds", "budget", "strategy", "kind", "available",
              "accuracy", "ci_low", "ci_high", "spend_mean", "spend_p95"]
_TAIL_COLS = ["escalated", "insufficient", "gap_closed", "note"]


def _columns(models: Sequence[str]) -> list[str]:
    per_model = [f"spend_{m}_{s}" for m in models for s in ("mean", "p95")]
    return _BASE_COLS + per_model + _TAIL_COLS


def _fmt(x: float) -> str:
    return "" if x is None or not math.isfinite(x) else format(x, ".6g")


def _fmt_budget(b: float) -> str:
    return str(int(b)) if float(b).is_integer() else repr(float(b))


def _num(s: str) -> float:
    return float(s) if s != "" else math.nan


def _rounded(r: SweepRow) -> SweepRow:
    """Values as the CSV stores them, so fresh and resumed runs report identical numbers."""
    def rd(x: float) -> float:
        return _num(_fmt(x))

    return _replace(r, accuracy=rd(r.accuracy), ci_low=rd(r.ci_low), ci_high=rd(r.ci_high),
                    spend_mean=rd(r.spend_mean), spend_p95=rd(r.spend_p95),
                    spend_by_model={m: (rd(a), rd(b)) for m, (a, b) in
                                    r.spend_by_model.items()},
                    escalated=rd(r.escalated), insufficient=rd(r.insufficient),
                    gap_closed=rd(r.gap_closed))


def _replace(r: SweepRow, **changes: Any) -> SweepRow:
    import dataclasses

    return dataclasses.replace(r, **changes)


def check_writable(folder: str | Path, files: Sequence[str] = (), *,
                   what: str = "--out") -> Path:
    """Make sure `folder` is (or can be made) a folder that accepts new files, and that none of
    `files` inside it is something else than a file; else a ValidationError naming the path.

    Called before any work starts, so a sweep does not run for minutes and then fail writing.
    Creates the folder (as writing would) and probes it with a temporary file.
    """
    import tempfile

    root = Path(folder)
    for parent in (root, *root.parents):  # the first one that exists must be a folder
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                why = "is a file, not a folder" if parent == root else                     f"cannot be created: {parent} is not a folder"
                raise ValidationError(f"{what} {root} {why}.", parameter="out", value=str(root))
            break
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root, prefix=".tts-write-test-"):
            pass
    except OSError as exc:
        raise ValidationError(f"{what} {root} is not writable ({exc.strerror or exc}); choose "
                              f"another folder.", parameter="out", value=str(root)) from None
    for name in files:
        target = root / name
        if target.exists() and not target.is_file():
            raise ValidationError(f"{what}: {target} exists and is not a file; move it away or "
                                  f"choose another folder.", parameter="out", value=str(target))
        if target.exists():
            try:
                with target.open("ab"):
                    pass
            except OSError as exc:
                raise ValidationError(f"{what}: {target} is not writable "
                                      f"({exc.strerror or exc}).", parameter="out",
                                      value=str(target)) from None
    return root


def _row_dict(r: SweepRow, models: Sequence[str], context: Mapping[str, str]) -> dict[str, str]:
    d = {**context, "budget": _fmt_budget(r.budget), "strategy": r.strategy, "kind": r.kind,
         "available": "yes" if r.available else "no", "accuracy": _fmt(r.accuracy),
         "ci_low": _fmt(r.ci_low), "ci_high": _fmt(r.ci_high),
         "spend_mean": _fmt(r.spend_mean), "spend_p95": _fmt(r.spend_p95),
         "escalated": _fmt(r.escalated), "insufficient": _fmt(r.insufficient),
         "gap_closed": _fmt(r.gap_closed), "note": r.note}
    for m in models:
        mean, p95 = r.spend_by_model.get(m, (math.nan, math.nan))
        d[f"spend_{m}_mean"], d[f"spend_{m}_p95"] = _fmt(mean), _fmt(p95)
    return d


def _write_csv(path: Path, rows: Sequence[SweepRow], models: Sequence[str],
               context: Mapping[str, str], *, mode: str) -> None:
    cols = _columns(models)
    new = mode == "w" or not path.exists() or path.stat().st_size == 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open(mode, newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=cols, lineterminator="\n")
        if new:
            writer.writeheader()
        for r in rows:
            writer.writerow(_row_dict(r, models, context))
        fh.flush()


def _read_checkpoint(path: Path, key: str, names: Sequence[str], models: Sequence[str],
                     notes: list[str] | None = None) -> dict[float, list[SweepRow]]:
    """Completed budgets of a checkpoint written with the same settings.

    Rows are appended one line at a time, so a writer killed mid-row leaves a last line without
    its newline, cut anywhere (even inside the config field or a UTF-8 character). That line is
    dropped (and cut off the file, so new rows start on a line of their own), with a note in
    `notes`; its budget is simply run again.
    """
    import io

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValidationError(f"cannot read sweep checkpoint {path} ({exc}); delete it or run "
                              f"without resuming.", parameter="checkpoint") from None
    complete = data[:data.rfind(b"\n") + 1]  # b"" when not even the header is whole
    try:
        reader = csv.DictReader(io.StringIO(complete.decode("utf-8"), newline=""))
        header = reader.fieldnames or []
        lines = list(reader)
    except (csv.Error, UnicodeDecodeError) as exc:
        raise ValidationError(f"cannot read sweep checkpoint {path} ({exc}); delete it or run "
                              f"without resuming.", parameter="checkpoint") from None
    if not complete:  # only a torn header: nothing was finished
        header = _columns(models)
    if header != _columns(models) or any(d.get("config") != key for d in lines):
        raise ValidationError(
            f"{path} holds a sweep with other settings (bank, questions, plans, seeds or "
            f"bootstrap differ); run without resuming (--fresh) to overwrite it, or write to "
            f"another folder.", parameter="checkpoint", value=str(path))
    if len(complete) < len(data):
        with path.open("r+b") as fh:
            fh.truncate(len(complete))
        if notes is not None:
            notes.append(f"dropped an incomplete last line of {path} ({len(data) - len(complete)}"
                         f" bytes, left by an interrupted write); its budget is run again.")
    by_budget: dict[float, dict[str, SweepRow]] = {}
    for d in lines:
        try:
            row = SweepRow(
                budget=float(d["budget"]), strategy=d["strategy"], kind=d["kind"],
                available=d["available"] == "yes", accuracy=_num(d["accuracy"]),
                ci_low=_num(d["ci_low"]), ci_high=_num(d["ci_high"]),
                spend_mean=_num(d["spend_mean"]), spend_p95=_num(d["spend_p95"]),
                spend_by_model={m: (_num(d[f"spend_{m}_mean"]), _num(d[f"spend_{m}_p95"]))
                                for m in models} if d["available"] == "yes" else {},
                escalated=_num(d["escalated"]), insufficient=_num(d["insufficient"]),
                gap_closed=_num(d["gap_closed"]), note=d["note"] or "")
        except (KeyError, TypeError, ValueError):
            continue  # a line cut short by an interruption: that budget is re-run
        by_budget.setdefault(row.budget, {})[row.strategy] = row
    return {b: [rows[n] for n in names] for b, rows in by_budget.items()
            if all(n in rows for n in names)}


# ---- reports --------------------------------------------------------------------------------
def _human(x: float) -> str:
    if not math.isfinite(x):
        return "-"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            v = x / div
            return f"{v:.0f}{suffix}" if v >= 100 or v == int(v) else f"{v:.3g}{suffix}"
    return f"{x:.0f}" if x == int(x) or abs(x) >= 10 else f"{x:.3g}"


def _budget_label(b: float) -> str:
    exact = _fmt_budget(b)
    return exact if len(exact) <= 7 else _human(b)


def _acc(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{x:.3f}"


def derived_lines(result: SweepResult) -> list[str]:
    """Tokens-to-match, gap closed and AUC as short sentences (markdown and terminal)."""
    lines = []
    names = result.available_names
    if "policy" in names and result.fixed_names:
        for ref, label in (("best-fixed", "best fixed strategy"),
                           ("best-vote", "best fixed-N vote")):
            if ref == "best-vote" and not any(_VOTE_AT.match(n) for n in result.fixed_names):
                continue
            ref_name = result.peak_name(result.fixed_names if ref == "best-fixed" else
                                        [n for n in result.fixed_names if _VOTE_AT.match(n)])
            for measure in ("spend", "budget"):
                t = result.tokens_to_match(ref, "policy", measure=measure)
                what = "mean spend" if measure == "spend" else "budget"
                if t.reached:
                    lines.append(f"Tokens-to-match ({what}) vs {label} {ref_name} (peak "
                                 f"{t.target:.3f} at {_human(t.reference_spend)}): policy "
                                 f"reaches it at {_human(t.candidate_spend)}, ratio "
                                 f"{t.ratio:.2f}x.")
                else:
                    lines.append(f"Tokens-to-match ({what}) vs {label} {ref_name} (peak "
                                 f"{t.target:.3f} at {_human(t.reference_spend)}): policy "
                                 f"never reaches it on this grid.")
    if lines:
        lines.append("Budget-based ratios move a lot on plateaus: a reference that gains 0.001 "
                     "at a larger budget counts as reaching its peak only there.")
    if "policy" in names and "oracle" in names and result.fixed_names:
        gaps = result.gap_closed("policy")
        parts = [f"{_fmt_budget(b)}: {'n/a' if not math.isfinite(g) else f'{g:.2f}'}"
                 for b, g in zip(result.budgets, gaps)]
        lines.append("Gap closed to the oracle, (policy - best fixed) / (oracle - best fixed), "
                     "per budget: " + ", ".join(parts) + ".")
    aucs = [f"{n} {result.auc(n):.3f}" for n in names]
    lines.append("Area under accuracy vs log-budget (normalised to [0, 1]): "
                 + ", ".join(aucs) + ".")
    return lines


def markdown(result: SweepResult, *, command: str | None = None, png: str | None = None) -> str:
    """The short markdown report: settings, accuracy table, per-plan summary, derived."""
    out = [f"# Budget sweep: {result.bank_name}", ""]
    if command:
        out += ["Command (regenerates these numbers exactly):", "", "```", command, "```", ""]
    out += [f"- Questions: {result.split_note}.",
            f"- Sample orders: {len(result.seeds)} seeds {list(result.seeds)}; accuracy 95% CIs "
            f"from {result.bootstrap} bootstrap resamples of (question, seed) pairs.",
            f"- Budget unit: {result.unit}. A plan that cannot pay for its cheapest step "
            f"counts as wrong and spends 0.",
            "- Oracle: per (question, seed), the cheapest evaluated plan that is correct at "
            "that budget (upper bound).",
            f"- Run time: {result.elapsed:.1f} s"
            + (f" (resumed {len(result.resumed_budgets)} budgets from the checkpoint)"
               if result.resumed_budgets else "") + "."]
    for name, why in result.unavailable.items():
        out.append(f"- {name}: unavailable ({why}).")
    out.append("")
    if png:
        out += [f"![accuracy vs spend]({png})", ""]
    names = result.available_names
    out += ["## Accuracy by budget", ""]
    out.append("| budget | " + " | ".join(names) + " |")
    out.append("|---:|" + "---:|" * len(names))
    for b in result.budgets:
        cells = [_acc(result.row(b, n).accuracy) for n in names]
        out.append(f"| {_fmt_budget(b)} | " + " | ".join(cells) + " |")
    out += ["", "## Each plan at its best budget", "",
            "| plan | accuracy [95% CI] | budget | mean spend | p95 spend | "
            + " | ".join(f"mean {m}" for m in result.models)
            + " | escalated | AUC |",
            "|---|---|---:|---:|---:|" + "---:|" * len(result.models) + "---:|---:|"]
    for n in names:
        c = result.curve(n)
        i = int(np.nanargmax(c["accuracy"]))
        r = result.row(result.budgets[i], n)
        per_model = " | ".join(_human(r.spend_by_model.get(m, (math.nan,))[0])
                               for m in result.models)
        out.append(f"| {n} | {r.accuracy:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}] | "
                   f"{_fmt_budget(r.budget)} | {_human(r.spend_mean)} | {_human(r.spend_p95)} | "
                   f"{per_model} | {r.escalated:.2f} | {result.auc(n):.3f} |")
    out += ["", "## Derived measures", ""]
    out += [f"- {line}" for line in derived_lines(result)]
    out.append("")
    return "\n".join(out)


def plot(result: SweepResult, path: str | Path) -> Path:
    """Accuracy vs mean spend (log x) and vs budget, one line per plan, shaded 95% CIs,
    oracle dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = result.available_names
    votes = [n for n in names if _VOTE_AT.match(n)]
    blues = plt.get_cmap("Blues")
    palette = {"vote": "tab:cyan", "chain": "tab:olive", "escalate": "tab:red",
               "cascade": "tab:purple", "policy": "tab:green", "oracle": "black"}
    others = iter(["tab:orange", "tab:brown", "tab:pink", "tab:gray"])
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2), sharey=True)
    curves = {n: result.curve(n) for n in names}
    for n in names:
        c = curves[n]
        if n in votes:
            color = blues(0.35 + 0.65 * votes.index(n) / max(1, len(votes) - 1))
        else:
            color = palette.get(n) or next(others, "tab:gray")
        label = n
        if result._kind(n) != "fixed":  # say so when a curve hides a fixed one it equals
            same = [m for m in result.fixed_names if np.array_equal(curves[m]["accuracy"],
                    c["accuracy"]) and np.array_equal(curves[m]["spend"], c["spend"])]
            if same:
                label = f"{n} (= {', '.join(same)})"
        style = dict(color=color, lw=2.2 if n in ("policy", "oracle") else 1.4,
                     ls="--" if n == "oracle" else "-", marker="o", ms=3, label=label)
        for ax, x in ((axes[0], c["spend"]), (axes[1], c["budget"])):
            keep = np.isfinite(x) & (x > 0)
            if not keep.any():
                continue
            ax.plot(x[keep], c["accuracy"][keep], **style)
            ax.fill_between(x[keep], c["ci_low"][keep], c["ci_high"][keep], color=color,
                            alpha=0.07 if n in votes else 0.15, lw=0)
    axes[0].set_xlabel(f"mean spend per question (units: {result.unit})")
    axes[1].set_xlabel("budget per question (same units)")
    axes[0].set_ylabel("accuracy (95% bootstrap CI shaded)")
    for ax in axes:
        ax.set_xscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.set_ylim(-0.02, 1.02)
    axes[1].legend(loc="lower right", fontsize=8, ncol=2)
    split = (f"held-out {result.n_questions}/{result.total_questions} questions"
             if result.heldout else f"all {result.n_questions} questions")
    fig.suptitle(f"{result.bank_name}: accuracy vs budget ({split}, {len(result.seeds)} "
                 f"seeds, {result.bootstrap} bootstrap resamples)")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return out


_SHORT = {"vote": "vote", "chain": "chn", "escalate": "esc", "cascade": "casc",
          "policy": "pol", "oracle": "orc"}


def print_table(result: SweepResult, console=None) -> None:
    """Accuracy per plan and budget, a per-plan summary, then the derived measures."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    names = result.available_names
    narrow = console.width < 8 + sum(max(len(n), 4) + 2 for n in names)
    short = {n: _SHORT.get(n, "@" + n[5:] if _VOTE_AT.match(n) else n) if narrow else n
             for n in names}
    legend = ", ".join(f"{v} = {k}" for k, v in short.items() if k != v)
    table = Table(title=f"{result.bank_name}: accuracy % per budget", box=box.SIMPLE_HEAD,
                  padding=(0, 1), pad_edge=False, collapse_padding=True,
                  caption=result.split_note + (f" ({legend})" if legend else ""))
    table.add_column("budget", justify="right", no_wrap=True)
    for n in names:
        table.add_column(short[n], justify="right", no_wrap=True,
                         style="bold" if n in ("policy", "oracle") else None)
    curves = [result.curve(n)["accuracy"] for n in names]
    for i, b in enumerate(result.budgets):
        table.add_row(_budget_label(b), *(f"{100 * c[i]:.1f}" if math.isfinite(c[i]) else "-"
                                   for c in curves))
    console.print(table)
    best = Table(title="each plan at its best budget", box=box.SIMPLE_HEAD, padding=(0, 1),
                 pad_edge=False, collapse_padding=True)
    for col in ("plan", "acc", "95% CI", "budget", "spend", "p95", "escal.", "AUC"):
        best.add_column(col, justify="left" if col == "plan" else "right", no_wrap=True)
    for n in names:
        c = result.curve(n)
        r = result.row(result.budgets[int(np.nanargmax(c["accuracy"]))], n)
        best.add_row(n, f"{r.accuracy:.3f}", f"{r.ci_low:.3f}-{r.ci_high:.3f}",
                     _budget_label(r.budget),
                     _human(r.spend_mean), _human(r.spend_p95), f"{r.escalated:.2f}",
                     f"{result.auc(n):.3f}")
    console.print(best)
    for name, why in result.unavailable.items():
        console.print(f"[yellow]{name}: unavailable[/] ({why})", highlight=False)
    for line in derived_lines(result):
        console.print(line, highlight=False)


# ---- CLI ------------------------------------------------------------------------------------
def add_cli(sub: argparse._SubParsersAction) -> None:
    """Mount `tts sweep` on the CLI."""
    p = sub.add_parser(
        "sweep", help="accuracy vs budget of every strategy, the policy and the oracle",
        description="Run every fixed strategy, the policy and the per-question oracle on a "
                    "replay bank at each budget, with bootstrap CIs; write CSV, PNG and "
                    "markdown into --out. Resumes from --out's CSV when the settings match.")
    p.add_argument("--bank", type=Path, default=None,
                   help="replay bank folder (default: the bundled MoT GSM8K bank)")
    p.add_argument("--budgets", default=None,
                   help="comma-separated, strictly increasing budgets per question "
                        "(default: 512,1024,...,524288)")
    p.add_argument("--strategies", default=None,
                   help="comma-separated plans: vote@N, vote, chain, escalate, escalate@N, "
                        "cascade, adaptive, policy, oracle (default: vote@1,2,4,..., vote, chain, "
                        "escalate, cascade, policy, oracle)")
    p.add_argument("--policy", type=Path, default=None,
                   help="tuned policy JSON (default: the built-in default policy); if it names "
                        "its training split, only the other questions are scored")
    p.add_argument("--heldout", type=Path, default=None,
                   help="file of question ids to evaluate (JSON list, {\"heldout_ids\": [...]} "
                        "or one per line)")
    p.add_argument("--seeds", type=int, default=5, help="seeded sample orders (default 5)")
    p.add_argument("--bootstrap", type=int, default=200,
                   help="bootstrap resamples for the 95%% CIs (default 200)")
    p.add_argument("--out", type=Path, default=Path("sweep-results"),
                   help="output folder for sweep.csv/.png/.md (default ./sweep-results)")
    p.add_argument("--fresh", action="store_true",
                   help="ignore and overwrite an existing sweep.csv in --out instead of resuming")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=_run_cli)


def _run_cli(args: argparse.Namespace) -> int:
    import shlex

    from rich.console import Console

    budgets = DEFAULT_BUDGETS if args.budgets is None else parse_budgets(args.budgets)
    strategies = None
    if args.strategies is not None:
        strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
        if not strategies:
            raise ValidationError("--strategies must name at least one plan.",
                                  parameter="strategies", value=args.strategies)
    if args.bank is not None and not args.bank.exists():
        raise BankError(f"bank {args.bank} does not exist.")
    heldout = read_heldout(args.heldout) if args.heldout is not None else None
    check_writable(args.out, ["sweep.csv", "sweep.png", "sweep.md"])
    result = run_sweep(args.bank, budgets, strategies=strategies, policy=args.policy,
                       seeds=args.seeds, bootstrap=args.bootstrap, heldout_ids=heldout,
                       progress=not args.no_progress, checkpoint=args.out / "sweep.csv",
                       resume=not args.fresh)
    command = "tts sweep " + " ".join(shlex.quote(a) for a in _argv_from(args))
    paths = result.write(args.out, command=command)
    console = Console()
    for note in result.notes:
        Console(stderr=True).print(f"note: {note}", highlight=False, markup=False)
    print_table(result, console)
    console.print(f"{result.split_note}; {result.elapsed:.1f} s"
                  + (f" ({len(result.resumed_budgets)} budgets resumed)"
                     if result.resumed_budgets else ""), highlight=False)
    console.print("wrote " + ", ".join(str(p) for p in paths.values()), highlight=False)
    return 0


def _argv_from(args: argparse.Namespace) -> list[str]:
    out: list[str] = []
    for flag, value in (("--bank", args.bank), ("--budgets", args.budgets),
                        ("--strategies", args.strategies), ("--policy", args.policy),
                        ("--heldout", args.heldout), ("--seeds", args.seeds),
                        ("--bootstrap", args.bootstrap), ("--out", args.out)):
        if value is not None:
            out += [flag, str(value)]
    return out
