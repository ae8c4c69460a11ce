"""Tune a policy with Optuna on a train split and report it on questions it never saw.

    tts tune --objective accuracy --budgets 512,2048,131072 --trials 300 --folds 5 --out DIR
    tts tune --objective cost --budget 262144 --storage sqlite:///tune.db --out DIR

Protocol (never report on tuned-on questions):

* Questions are split by id: `--heldout-fraction F` (one train / held-out split) or
  `--folds K` (K-fold: every question is held out exactly once, by a policy tuned on the
  others; the report is the out-of-fold estimate).
* On the train questions only: the prompt difficulty model and the probe difficulty model are
  fitted (`tts.difficulty`), then an Optuna study searches the `Level` parameters
  (`suggest_level`: wave sizes, sample caps, token caps, stop rule, escalation thresholds),
  scoring each trial with the vectorised evaluator over `seeds` sample orders.
* The best trials are re-scored on the train questions with twice the seeds, and the best of
  those must then pass a model-selection guard (`select`, the one-standard-error rule of
  Breiman et al. 1984 / Hastie, Tibshirani & Friedman, ESL 7.10): the tuned winner is paired,
  question by question, with the best fixed plan (`baseline_levels`: the sweep's fixed
  strategies reproduced exactly, plus the study's enqueued baselines) on the same questions and
  seeds, and kept only when its mean per-question gain exceeds `se_margin` standard errors;
  otherwise the baseline is the level. Among many near-equal trials the best on ~hundreds of
  questions is partly luck (the winner's curse); the guard keeps that luck from costing
  held-out accuracy against the plans the sweep compares with.
* The chosen level becomes the policy; it is evaluated on the held-out questions with other
  seeds (`heldout_seeds`).

Objectives: "accuracy" (max accuracy at the budget; ties -> cheaper), "cost" (min mean cost
subject to accuracy >= target; default target: the large model's own accuracy on the train
questions, i.e. "match GPT-4 for less"), "pareto" (NSGA-II over accuracy and cost; the report
evaluates every front member held-out). With several `--budgets`, one level is tuned per
budget ("accuracy" objective) and stacked into one policy.

Studies persist in any Optuna RDB storage (`--storage sqlite:///tune.db`); a study records a
fingerprint of its data and settings, resumes where it stopped (only the missing trials run)
and can be shared by several workers running the same command.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from tts.budgets.budget import check_budget
from tts.errors import BankError, ValidationError
from tts.evaluate import BankArrays, evaluate
from tts.policy import CrossFitPolicy, Level, ParamPolicy
from tts.strategies import Escalate, Vote

if TYPE_CHECKING:
    import argparse

    import optuna

__all__ = ["TuneData", "prepare", "suggest_level", "tune_level", "tune_policy", "split",
           "run_tune", "crossfit", "baseline_params", "baseline_levels", "level_of_strategy",
           "select", "Scored", "AGREEMENT_WEIGHTS", "OBJECTIVES", "SE_MARGIN", "add_cli"]

OBJECTIVES = ("accuracy", "cost", "pareto")
AGREEMENT_WEIGHTS = (6.0, -12.0, 0.0, 0.0, 0.0, 0.0, 0.0)
"""Untrained probe score: difficulty 0.5 at agreement 0.5, spanning ~0.0025..0.9975."""
MAX_TOKENS_CHOICES = (128, 192, 256, 384, 512)
LARGE_MAX_TOKENS_CHOICES = (256, 320, 384, 512)
TIE_BREAK = 1e-4
"""Weight of the cost share in the "accuracy" objective: only breaks accuracy ties."""
SE_MARGIN = 1.0
"""Default `se_margin` of the model-selection guard (the one-standard-error rule)."""
FORMAT = "tts-tune/1"


# ---- data prepared on a train split --------------------------------------------------------
@dataclass
class TuneData:
    """Everything a study needs, fitted on train questions only."""

    arrays: BankArrays
    seeds: tuple[int, ...]
    count_prompt: bool
    prompt: Any
    """PromptDifficulty fitted on the train labels (None when they are all one class)."""
    weights: dict[str, tuple[float, ...]]
    """Probe difficulty models to choose from: "agreement" and "learned"."""
    ref_cost: float
    """Mean cost of the large model alone (or of the biggest vote without one) on train."""
    large_accuracy: float | None
    max_samples: int
    fingerprint: str = ""

    @property
    def has_large(self) -> bool:
        return "large" in self.arrays.models


def prepare(arrays: BankArrays, *, seeds: Sequence[int] = (0, 1, 2),
            count_prompt: bool = False) -> TuneData:
    """Fit the difficulty models on `arrays` (the train split) and measure references."""
    from tts.difficulty import (PromptDifficulty, ProbeDifficulty, cross_fit_prior,
                                probe_matrix, vote_wrong)

    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise ValidationError("need at least one training seed.", parameter="seeds")
    small = arrays.models["small"]
    m = arrays.mode(small, "sample")
    if (m.size == 0).any():
        raise BankError(f"every question needs 'sample' records of the small model {small!r} "
                        f"to tune a policy; {int((m.size == 0).sum())} have none.")
    max_samples = int(m.size.min())
    labels = vote_wrong(arrays)
    prompt = None
    weights = {"agreement": AGREEMENT_WEIGHTS}
    if labels.min() != labels.max() and len(arrays) >= 4:
        prompt = PromptDifficulty.fit(arrays.questions, labels)
        prior = cross_fit_prior(arrays, np.arange(len(arrays)), labels=labels)
        x, y, _ = probe_matrix(arrays, range(1, max_samples + 1), seeds, prior)
        if y.min() != y.max():
            weights["learned"] = ProbeDifficulty.fit(x, y).weights
    if "large" in arrays.models:
        ref = evaluate(arrays, Escalate(), 1e12, seeds[:1], count_prompt=count_prompt)
        ref_cost, large_acc = ref.mean_cost, ref.accuracy
    else:
        ref = evaluate(arrays, Vote(max_samples=max_samples, wave=max_samples, confidence=1.0),
                       1e12, seeds[:1], count_prompt=count_prompt)
        ref_cost, large_acc = ref.mean_cost, None
    data = TuneData(arrays, seeds, count_prompt, prompt, weights, max(ref_cost, 1e-9),
                    large_acc, max_samples)
    digest = hashlib.sha1(json.dumps({
        "ids": arrays.problem_ids, "seeds": seeds, "count_prompt": count_prompt,
        "weights": {k: list(v) for k, v in weights.items()},
        "prompt": None if prompt is None else prompt.to_dict(), "ref": ref_cost,
    }, sort_keys=True).encode()).hexdigest()
    data.fingerprint = digest[:16]
    return data


# ---- search space ----------------------------------------------------------------------------
def _large_price(data: TuneData, large_max_tokens: int) -> float:
    cost = data.arrays.cost.of(data.arrays.models["large"])
    units = large_max_tokens * cost.output
    if data.count_prompt:
        m = data.arrays.mode(data.arrays.models["large"], "greedy")
        units += float(m.prompt_tokens.max(initial=0)) * cost.prompt
    return units


def suggest_level(trial: optuna.trial.BaseTrial, data: TuneData, budget: float,
                  from_budget: float = 0.0) -> Level:
    """The search space: one `Level` from an Optuna trial (every choice is recorded)."""
    p: dict[str, Any] = {}
    p["max_tokens"] = trial.suggest_categorical("max_tokens", list(MAX_TOKENS_CHOICES))
    p["probe"] = trial.suggest_int("probe", 1, min(8, data.max_samples))
    p["wave"] = trial.suggest_int("wave", 1, min(8, data.max_samples))
    p["max_samples"] = trial.suggest_int("max_samples", 1, data.max_samples)
    # Categorical switches make the fixed plans exactly representable (never stop early,
    # never escalate, escalate everything), so tuning can fall back on them where they win.
    if trial.suggest_categorical("stop_early", [True, False]):
        p["confidence"] = trial.suggest_float("confidence", 0.5, 1.0)
    else:
        p["confidence"] = 1.0
    score = trial.suggest_categorical("score", sorted(data.weights))
    affordable = [t for t in LARGE_MAX_TOKENS_CHOICES if _large_price(data, t) <= budget]
    use_large = data.has_large and bool(affordable) and \
        trial.suggest_categorical("use_large", [True, False])
    if use_large:
        p["large_max_tokens"] = trial.suggest_categorical("large_max_tokens", affordable)
        if trial.suggest_categorical("escalate_all", [False, True]):
            p["direct_above"] = 0.0
        else:
            p["escalate_above"] = trial.suggest_float("escalate_above", 0.0, 1.0)
            p["escalate_early_above"] = trial.suggest_float("escalate_early_above", 0.0, 1.0)
            if data.prompt is not None:
                p["direct_above"] = trial.suggest_float("direct_above", 0.0, 1.0)
            p["keep_for_large"] = trial.suggest_categorical("keep_for_large", [False, True])
    return Level(from_budget=from_budget, use_large=use_large, probe_weights=data.weights[score],
                 **p)


def _objective_values(objective: str, acc: float, cost: float, data: TuneData,
                      target: float | None) -> float | tuple[float, float]:
    share = cost / data.ref_cost
    if objective == "accuracy":
        return acc - TIE_BREAK * share
    if objective == "cost":
        shortfall = max(0.0, float(target) - acc)  # type: ignore[arg-type]
        # Any infeasible trial ranks below every feasible one (shares stay well under 5).
        return share + (5.0 + 100.0 * shortfall if shortfall > 0 else 0.0)
    return acc, share


def _policy(data: TuneData, levels: Sequence[Level], notes: Mapping | None = None) -> ParamPolicy:
    return ParamPolicy(tuple(levels), data.weights.get("learned", AGREEMENT_WEIGHTS),
                       data.prompt, dict(notes or {}))


# ---- studies -------------------------------------------------------------------------------
@dataclass
class LevelResult:
    level: Level
    """The chosen level (the tuned winner, or the baseline the guard fell back on)."""
    value: Any
    trials: int
    study_name: str
    front: list[Level] = field(default_factory=list)
    """Pareto objective: every level on the front (best accuracy first)."""
    chosen: str = "tuned"
    """"tuned" or "baseline:<name>" (see `selection` for why)."""
    tuned_level: Level | None = None
    """The re-ranked study winner, whether or not the guard kept it."""
    selection: dict[str, Any] = field(default_factory=dict)
    """The guard's record on the training questions: chosen, baseline, mean_diff, se,
    se_margin, accuracies and costs of both, questions, seeds, reason (`select`)."""


def check_storage(url: str | None) -> None:
    """Refuse a storage URL that is malformed, or a `sqlite:///FILE` whose FILE exists but is
    not an Optuna database (an empty file, a folder, some other file or SQLite database):
    Optuna would write its tables into it. Nothing is created or changed."""
    if url is None:
        return
    if not isinstance(url, str) or "://" not in url:
        raise ValidationError(f"--storage must be an Optuna RDB URL such as "
                              f"sqlite:///tune.db, got {url!r}.", parameter="storage", value=url)
    if not url.startswith("sqlite:"):
        return
    import sqlite3

    from sqlalchemy.engine import make_url

    try:
        database = make_url(url).database
    except Exception:  # noqa: BLE001 (SQLAlchemy's ArgumentError and friends)
        raise ValidationError(f"--storage {url!r} is not a valid database URL.",
                              parameter="storage", value=url) from None
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if not path.exists():
        return
    fix = "choose a new file name (Optuna creates it) or an existing Optuna database"
    if not path.is_file():
        raise ValidationError(f"--storage {url!r}: {path} is not a file; {fix}.",
                              parameter="storage", value=url)
    with open(path, "rb") as fh:
        header = fh.read(16)
    if header != b"SQLite format 3\x00":
        what = "is empty" if not header else "is not a SQLite database"
        raise ValidationError(f"--storage {url!r}: {path} exists and {what}; tts tune will not "
                              f"write Optuna's tables into it. {fix[0].upper() + fix[1:]}.",
                              parameter="storage", value=url)
    try:
        con = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise ValidationError(f"--storage {url!r}: cannot read {path} ({exc}).",
                              parameter="storage", value=url) from None
    if not {"studies", "version_info"} <= tables:
        shown = sorted(tables)[:5]
        raise ValidationError(f"--storage {url!r}: {path} is a SQLite database but not an "
                              f"Optuna one (tables {shown}); tts tune will not write into it. "
                              f"{fix[0].upper() + fix[1:]}.", parameter="storage", value=url)


def open_storage(url: str | None):
    """An Optuna RDB storage for `url` (None: in memory); a clear error if it cannot open,
    or if it names an existing file that is not an Optuna database (`check_storage`)."""
    if url is None:
        return None
    import optuna

    check_storage(url)
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(url)
        except (IntegrityError, ProgrammingError) as exc:
            # Workers started together on a fresh database race to create Optuna's tables
            # ("type ... already exists", duplicate key): the loser retries and finds them.
            error = exc
            time.sleep(0.2 * (attempt + 1))
        except Exception as exc:  # SQLAlchemy raises many kinds; all mean "cannot open"
            error = exc
            break
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    raise ValidationError(f"cannot open Optuna storage {url!r}: {first}",
                          parameter="storage", value=url) from None


def tune_level(data: TuneData, budget: float, *, objective: str = "accuracy",
               target: float | None = None, trials: int = 200, sampler_seed: int = 0,
               storage: Any = None, study_name: str | None = None, from_budget: float = 0.0,
               progress: Callable[[int], None] | None = None, rerank: int = 10,
               se_margin: float | None = SE_MARGIN) -> LevelResult:
    """Run (or resume) one study; the best level for `budget` under `objective`.

    The study starts from `baseline_params` (fixed plans); the `rerank` best trials are then
    re-scored on the training questions with twice the seeds and the best of those is the
    tuned winner. Unless `se_margin` is None, the winner must then beat the best of
    `baseline_levels` by more than `se_margin` standard errors of the paired per-question
    difference (accuracy objective; `select` has the cost objective's rule), else that
    baseline is returned. The Pareto objective has no guard.
    """
    import optuna

    if objective not in OBJECTIVES:
        raise ValidationError(f"`objective` must be one of {list(OBJECTIVES)}, got "
                              f"{objective!r}.", parameter="objective", value=objective)
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ValidationError(f"`trials` must be an integer >= 1, got {trials!r}.",
                              parameter="trials", value=trials)
    _check_margin(se_margin)
    if objective == "cost":
        target = data.large_accuracy if target is None else target
        if target is None or not 0.0 < target <= 1.0:
            raise ValidationError(f"the cost objective needs a target accuracy in (0, 1], got "
                                  f"{target!r} (no large model to default to).",
                                  parameter="target_accuracy", value=target)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = study_name or f"tts-{objective}-{budget:g}-{data.fingerprint}"
    if objective == "pareto":
        sampler = optuna.samplers.NSGAIISampler(seed=sampler_seed)
        directions = ["maximize", "minimize"]
    else:
        sampler = optuna.samplers.TPESampler(seed=sampler_seed, n_startup_trials=min(20, trials))
        directions = ["maximize" if objective == "accuracy" else "minimize"]
    study = optuna.create_study(study_name=name, storage=storage, sampler=sampler,
                                directions=directions, load_if_exists=True)
    claim_study(study, name, {"fingerprint": data.fingerprint, "objective": objective,
                              "budget": budget, "target": target, "from_budget": from_budget})

    def run(trial: optuna.trial.Trial):
        level = suggest_level(trial, data, budget, from_budget)
        ev = evaluate(data.arrays, _policy(data, [replace(level, from_budget=0.0)]), budget,
                      data.seeds, count_prompt=data.count_prompt)
        trial.set_user_attr("accuracy", ev.accuracy)
        trial.set_user_attr("cost", ev.mean_cost)
        return _objective_values(objective, ev.accuracy, ev.mean_cost, data, target)

    def done() -> int:
        return sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.get_trials(
            deepcopy=False))

    callbacks = [optuna.study.MaxTrialsCallback(trials,
                                                states=(optuna.trial.TrialState.COMPLETE,))]
    if progress is not None:
        progress(done())
        callbacks.append(lambda s, t: progress(done()))
    if not study.get_trials(deepcopy=False):
        for params in baseline_params(data, budget)[:trials]:
            study.enqueue_trial(params)
    remaining = trials - done()
    if remaining > 0:
        study.optimize(run, n_trials=remaining, callbacks=callbacks)

    def level_of(t) -> Level:
        return suggest_level(optuna.trial.FixedTrial(t.params), data, budget, from_budget)

    if objective == "pareto":
        front = sorted(study.best_trials, key=lambda t: (-t.values[0], t.values[1]))
        levels = [level_of(t) for t in front]
        return LevelResult(levels[0], [t.values for t in front], done(), name, levels)
    # Winner's curse: the best of many near-equal trials is partly luck of the training
    # sample orders. Re-score the top trials on the training questions with more seeds.
    complete = [t for t in study.get_trials(deepcopy=False)
                if t.state == optuna.trial.TrialState.COMPLETE]
    sign = -1.0 if objective == "accuracy" else 1.0
    top = sorted(complete, key=lambda t: (sign * t.value, t.number))[:rerank]
    seeds = extended_seeds(data)

    def score(level: Level) -> Scored:
        ev = evaluate(data.arrays, _policy(data, [replace(level, from_budget=0.0)]), budget,
                      seeds, count_prompt=data.count_prompt)
        return Scored(level, ev, _objective_values(objective, ev.accuracy, ev.mean_cost, data,
                                                    target))  # type: ignore[arg-type]

    best: Scored | None = None
    for t in top:
        got = score(level_of(t))
        if best is None or sign * got.value < sign * best.value:
            best = got
    assert best is not None
    if se_margin is None:
        return LevelResult(best.level, best.value, done(), name, tuned_level=best.level,
                           selection={"chosen": "tuned", "reason": "guard off (se_margin None)"})
    baselines = {nm: score(replace(lv, from_budget=from_budget))
                 for nm, lv in baseline_levels(data, budget)}
    chosen, record = select(objective, best, baselines, se_margin, target)
    record["seeds"] = list(seeds)
    pick = best if chosen == "tuned" else baselines[chosen.split(":", 1)[1]]
    return LevelResult(pick.level, pick.value, done(), name, chosen=chosen,
                       tuned_level=best.level, selection=record)


def claim_study(study: Any, name: str, settings: Mapping[str, Any]) -> None:
    """Mark a new study with its data and settings, or refuse to resume one made with
    others (a stored study resumes only the same search)."""
    old = study.user_attrs.get("settings")
    if old is None:
        study.set_user_attr("settings", dict(settings))
    elif old != dict(settings):
        raise ValidationError(f"study {name!r} in this storage was made with other data or "
                              f"settings ({old} vs {dict(settings)}); pick another "
                              f"--study-name.", parameter="study_name", value=name)


def extended_seeds(data: TuneData) -> tuple[int, ...]:
    """The re-ranking (and guard) seeds: the training seeds and as many again (seed + 7919)."""
    return tuple(data.seeds) + tuple(s + 7919 for s in data.seeds)


def _check_margin(se_margin: Any) -> None:
    if se_margin is None:
        return
    if isinstance(se_margin, bool) or not isinstance(se_margin, (int, float)) \
            or not math.isfinite(se_margin) or se_margin < 0:
        raise ValidationError(f"`se_margin` must be a finite number >= 0 (or None: no guard), "
                              f"got {se_margin!r}.", parameter="se_margin", value=se_margin)


@dataclass
class Scored:
    """A candidate level for `select`: its Evaluation on the training questions (seeds x
    questions) and its objective value there."""

    level: Level
    ev: Any
    value: float


def select(objective: str, tuned: Scored, baselines: Mapping[str, Scored],
           se_margin: float, target: float | None = None) -> tuple[str, dict[str, Any]]:
    """The model-selection guard: keep the tuned winner or fall back on the best baseline.

    All candidates are scored on the same training questions and seeds. The best baseline is
    the one with the best objective value (first listed on ties). With d_q the paired
    difference of per-question correctness (averaged over seeds), tuned minus that baseline,
    mean(d) and SE = std(d, ddof=1) / sqrt(n):

    * accuracy objective (one-standard-error rule): keep the tuned level only if
      mean(d) > se_margin * SE; otherwise the fixed plan, whose training score is within
      the noise of the winner's, is chosen (a plain plan that is as good, not a lucky one);
    * cost objective (the same rule applied to its constraint): the baseline is chosen when
      its objective is no worse (cheaper, or feasible where the tuned is not); a cheaper tuned
      level is kept only if its training accuracy minus se_margin * SE still reaches `target`
      (with the default target, the large model's accuracy = escalate-all's, that is
      mean(d) >= se_margin * SE against escalate-all), or when no baseline reaches the target.

    Returns ("tuned" | "baseline:<name>", record) with the numbers behind the choice.
    """
    if not baselines:
        return "tuned", {"chosen": "tuned", "reason": "no baseline plan"}
    sign = -1.0 if objective == "accuracy" else 1.0
    name = min(baselines, key=lambda k: sign * baselines[k].value)  # first wins ties
    base = baselines[name]
    d = tuned.ev.correct.mean(0) - base.ev.correct.mean(0)
    n = int(d.size)
    mean = float(d.mean())
    se = float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0
    t_acc, b_acc = tuned.ev.accuracy, base.ev.accuracy
    record: dict[str, Any] = {
        "baseline": name, "mean_diff": mean, "se": se, "se_margin": float(se_margin),
        "tuned_accuracy": t_acc, "baseline_accuracy": b_acc,
        "tuned_cost": tuned.ev.mean_cost, "baseline_cost": base.ev.mean_cost,
        "questions": n, "tuned_is_baseline": _same_plan(tuned.level, base.level)}
    if objective == "accuracy":
        keep = mean > se_margin * se
        why = (f"tuned beats {name} by {mean:+.4f} > {se_margin:g} x SE {se:.4f}" if keep else
               f"tuned vs {name}: {mean:+.4f} <= {se_margin:g} x SE {se:.4f}: keep the fixed plan")
    else:
        if sign * base.value <= sign * tuned.value:
            keep = False
            why = (f"{name} is no worse on the training objective ({base.value:.4f} vs "
                   f"{tuned.value:.4f})")
        elif b_acc < float(target):  # type: ignore[arg-type]
            keep = True
            why = f"no baseline reaches the target {target:.4f} on train (best: {name})"
        else:
            low = t_acc - se_margin * se
            keep = low >= float(target)  # type: ignore[arg-type]
            why = (f"tuned accuracy {t_acc:.4f} - {se_margin:g} x SE {se:.4f} = {low:.4f} "
                   f"{'>=' if keep else '<'} target {target:.4f} (vs {name})")
        record["target"] = target
    chosen = "tuned" if keep else f"baseline:{name}"
    record["chosen"] = chosen
    record["reason"] = why
    return chosen, record


def baseline_params(data: TuneData, budget: float) -> list[dict[str, Any]]:
    """Trials that reproduce fixed plans, enqueued first so a study starts from them: the
    biggest small-model vote (no early stop), and escalating every prompt when affordable."""
    s = data.max_samples
    vote = {"max_tokens": 512, "probe": min(8, s), "wave": min(8, s), "max_samples": s,
            "stop_early": False, "score": "agreement"}
    out = [dict(vote)]
    affordable = [t for t in LARGE_MAX_TOKENS_CHOICES if _large_price(data, t) <= budget]
    if data.has_large and affordable:
        out[0]["use_large"] = False
        out.append({**vote, "use_large": True, "large_max_tokens": affordable[-1],
                    "escalate_all": True})
    return out


CASCADE_EPS = 1e-9
"""A cascade keeps the small answer when agreement >= escalate_below; as a `Level` that is
difficulty logit (escalate_below - CASCADE_EPS) - agreement < 0 (agreements of votes over
<= 1e6 samples that differ from escalate_below differ by far more than this)."""


def level_of_strategy(strategy: Any, **extra: Any) -> Level | None:
    """The `Level` that runs exactly `strategy` (a Vote, Escalate or Cascade), or None.

    Vote(max_samples, wave, ...) is an adaptive vote that never escalates with probe = wave;
    Escalate is a level that sends every prompt to the large model (direct_above 0);
    Cascade(escalate_below=e) escalates when the agreement difficulty model says
    agreement < e (its probe weights are (e - CASCADE_EPS, -1, 0, ...), threshold 0.5).
    `extra` sets other Level fields (e.g. from_budget).
    """
    from tts.strategies import Cascade

    zeros = (0.0,) * (len(AGREEMENT_WEIGHTS) - 2)
    if isinstance(strategy, Vote):
        if strategy.role != "small":
            return None
        return Level(probe=strategy.wave, wave=strategy.wave, max_samples=strategy.max_samples,
                     max_tokens=strategy.max_tokens, temperature=strategy.temperature,
                     confidence=strategy.confidence, use_large=False,
                     probe_weights=AGREEMENT_WEIGHTS, **extra)
    if isinstance(strategy, Escalate):
        return Level(use_large=True, direct_above=0.0, large_samples=strategy.samples,
                     large_max_tokens=strategy.max_tokens, temperature=strategy.temperature,
                     probe_weights=AGREEMENT_WEIGHTS, **extra)
    if isinstance(strategy, Cascade):
        return Level(probe=strategy.wave, wave=strategy.wave, max_samples=strategy.max_samples,
                     max_tokens=strategy.max_tokens, temperature=strategy.temperature,
                     confidence=strategy.confidence, use_large=True, escalate_above=0.5,
                     escalate_early_above=1.0, direct_above=1.0,
                     large_samples=strategy.large_samples,
                     large_max_tokens=strategy.large_max_tokens,
                     keep_for_large=strategy.keep_for_large,
                     probe_weights=(strategy.escalate_below - CASCADE_EPS, -1.0, *zeros),
                     **extra)
    return None


def sweep_fixed_plans(data: TuneData) -> dict[str, Any]:
    """The fixed strategies `tts sweep` compares against by default (its vote@N sizes, `vote`,
    `escalate`, `cascade`, with the sweep's settings), for a bank holding `data.max_samples`
    small samples per question; `chain` is left out (no Level runs it)."""
    from tts.strategies import Cascade
    from tts.sweep import VOTE_SIZES

    fits = data.max_samples
    sizes = [n for n in VOTE_SIZES if n <= fits]
    if fits not in sizes:
        sizes.append(fits)
    cap = min(16, fits)
    plans: dict[str, Any] = {f"vote@{n}": Vote(max_samples=n, wave=n, confidence=1.0)
                             for n in sizes}
    plans["vote"] = Vote(max_samples=cap)
    if data.has_large:
        plans["escalate"] = Escalate()
        plans["cascade"] = Cascade(max_samples=cap)
    return plans


def baseline_levels(data: TuneData, budget: float) -> list[tuple[str, Level]]:
    """Named fixed plans as levels, for the selection guard: the sweep's fixed strategies
    reproduced exactly (`sweep_fixed_plans`), then the study's enqueued `baseline_params`
    ("tuner-vote", "tuner-escalate") where they differ from all of those."""
    out: list[tuple[str, Level]] = []
    for name, strategy in sweep_fixed_plans(data).items():
        lv = level_of_strategy(strategy)
        if lv is not None:
            out.append((name, lv))
    import optuna

    for params in baseline_params(data, budget):
        lv = replace(suggest_level(optuna.trial.FixedTrial(params), data, budget), from_budget=0.0)
        if not any(_same_plan(lv, other) for _, other in out):
            out.append(("tuner-escalate" if lv.direct_above == 0.0 else "tuner-vote", lv))
    return out


def _same_plan(a: Level, b: Level) -> bool:
    """Whether two levels run the same plan (escalate-all levels differ only in what they
    would do with the small model, which they never use)."""
    if a.use_large and b.use_large and a.direct_above == 0.0 and b.direct_above == 0.0:
        return (a.large_samples, a.large_max_tokens, a.temperature) == \
            (b.large_samples, b.large_max_tokens, b.temperature)
    return replace(a, from_budget=0.0) == replace(b, from_budget=0.0)


def tune_policy(data: TuneData, budgets: Sequence[float], *, objective: str = "accuracy",
                target: float | None = None, trials: int = 200, sampler_seed: int = 0,
                storage: Any = None, study_prefix: str | None = None,
                progress: Callable[[str, int], None] | None = None,
                notes: Mapping | None = None, se_margin: float | None = SE_MARGIN
                ) -> tuple[ParamPolicy, list[LevelResult]]:
    """One study per budget; level i serves budgets from budgets[i] (the first from 0).

    The policy's notes record the selection guard's choice per level ("selection")."""
    _check_margin(se_margin)
    results = []
    for i, b in enumerate(budgets):
        start = 0.0 if i == 0 else float(b)
        name = None if study_prefix is None else f"{study_prefix}-b{b:g}"
        cb = None if progress is None else (lambda n, b=b: progress(f"budget {b:g}", n))
        results.append(tune_level(data, float(b), objective=objective, target=target,
                                  trials=trials, sampler_seed=sampler_seed + i, storage=storage,
                                  study_name=name, from_budget=start, progress=cb,
                                  se_margin=se_margin))
    notes = dict(notes or {})
    notes["selection"] = [{"budget": float(b), **selection_summary(r)}
                          for b, r in zip(budgets, results)]
    policy = _policy(data, [r.level for r in results], notes)
    return policy, results


def selection_summary(r: LevelResult) -> dict[str, Any]:
    """JSON-ready guard record of one tuned level (chosen, baseline, mean_diff, se, ...)."""
    keys = ("chosen", "baseline", "mean_diff", "se", "se_margin", "tuned_accuracy",
            "baseline_accuracy", "tuned_cost", "baseline_cost", "target", "questions",
            "tuned_is_baseline", "reason")
    sel = r.selection or {"chosen": r.chosen}
    return {k: sel[k] for k in keys if k in sel}


# ---- splits and held-out reports -----------------------------------------------------------
def split(n: int, heldout_fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) index arrays of a seeded shuffle; both must hold >= 2 questions."""
    if isinstance(heldout_fraction, bool) or not isinstance(heldout_fraction, (int, float)) \
            or not 0.0 < heldout_fraction < 1.0:
        raise ValidationError(f"`heldout_fraction` must be in (0, 1), got {heldout_fraction!r}.",
                              parameter="heldout_fraction", value=heldout_fraction)
    k = int(round(n * heldout_fraction))
    if k < 2 or n - k < 2:
        raise ValidationError(f"a bank of {n} questions is too small to split with held-out "
                              f"fraction {heldout_fraction}: both parts need >= 2 questions "
                              f"(would be {n - k} train, {k} held-out).",
                              parameter="heldout_fraction", value=heldout_fraction)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[k:]), np.sort(perm[:k])


def heldout_numbers(arrays: BankArrays, policy: Any, budget: float, seeds: Sequence[int],
                    count_prompt: bool) -> dict[str, Any]:
    ev = evaluate(arrays, policy, budget, seeds, count_prompt=count_prompt)
    out = {"budget": budget, "questions": len(arrays), "seeds": list(seeds),
           "accuracy": ev.accuracy, "mean_cost": ev.mean_cost,
           "escalation_rate": ev.escalation_rate,
           "mean_small_samples": float(ev.small_samples.mean())}
    if "large" in arrays.models:
        ref = evaluate(arrays, Escalate(), budget, seeds, count_prompt=count_prompt)
        out["large_only_accuracy"] = ref.accuracy
        out["large_only_cost"] = ref.mean_cost
        out["cost_share_of_large_only"] = (ev.mean_cost / ref.mean_cost if ref.mean_cost
                                           else math.nan)
    return out


def crossfit(arrays: BankArrays, budgets: Sequence[float], *, folds: int = 5,
             objective: str = "accuracy", target: float | None = None, trials: int = 200,
             seeds: Sequence[int] = (0, 1, 2), split_seed: int = 0, sampler_seed: int = 0,
             count_prompt: bool = False, storage: Any = None, study_prefix: str | None = None,
             progress: Callable[[str, int], None] | None = None,
             se_margin: float | None = SE_MARGIN
             ) -> tuple[CrossFitPolicy, list[list[LevelResult]]]:
    """K-fold tuning: fold f's policy is tuned on the other folds' questions only."""
    from tts.difficulty import kfold

    parts = kfold(len(arrays), folds, split_seed)
    policies, results = [], []
    for f, held in enumerate(parts):
        train = np.setdiff1d(np.arange(len(arrays)), held)
        data = prepare(arrays.subset(train), seeds=seeds, count_prompt=count_prompt)
        prefix = None if study_prefix is None else f"{study_prefix}-fold{f}of{folds}"
        cb = None if progress is None else (lambda what, n, f=f: progress(
            f"fold {f + 1}/{folds} {what}", n))
        notes = {"train_ids": [arrays.problem_ids[i] for i in train], "fold": f}
        pol, res = tune_policy(data, budgets, objective=objective, target=target, trials=trials,
                               sampler_seed=sampler_seed + 1000 * f, storage=storage,
                               study_prefix=prefix, progress=cb, notes=notes,
                               se_margin=se_margin)
        policies.append(pol)
        results.append(res)
    heldout_ids = [[arrays.problem_ids[i] for i in held] for held in parts]
    return CrossFitPolicy(policies, heldout_ids), results


def run_tune(arrays: BankArrays, *, objective: str = "accuracy",
             budgets: Sequence[float] = (262144.0,), target: float | None = None,
             trials: int = 200, folds: int | None = None, heldout_fraction: float = 0.3,
             seeds: Sequence[int] = (0, 1, 2), heldout_seeds: Sequence[int] = (100, 101, 102),
             split_seed: int = 0, sampler_seed: int = 0, count_prompt: bool = False,
             storage: str | None = None, study_name: str | None = None,
             progress: Callable[[str, int], None] | None = None,
             se_margin: float | None = SE_MARGIN) -> dict[str, Any]:
    """Tune and report held-out; returns {"policy": ParamPolicy, "report": dict, ...}.

    `report["selection"]` holds, per budget (and per fold with `folds`), the guard's choice
    on the training questions ("tuned" or "baseline:<name>", mean diff, SE); each held-out
    entry repeats the choice(s) under "chosen"."""
    _check_margin(se_margin)
    budgets = [check_budget(b, "budgets") for b in budgets]
    if not budgets or any(not b > 0 for b in budgets) or sorted(set(budgets)) != budgets:
        raise ValidationError(f"budgets must be positive and strictly increasing, got "
                              f"{budgets}.", parameter="budgets", value=budgets)
    if objective != "accuracy" and len(budgets) != 1:
        raise ValidationError(f"the {objective!r} objective tunes one budget; got {len(budgets)}"
                              f" (several budgets stack levels for the 'accuracy' objective).",
                              parameter="budgets", value=budgets)
    store = open_storage(storage)
    prefix = study_name or (None if store is None else f"tts-{objective}")
    report: dict[str, Any] = {"format": FORMAT, "objective": objective, "budgets": budgets,
                              "bank": arrays.bank.meta.name, "train_seeds": list(seeds),
                              "heldout_seeds": list(heldout_seeds),
                              "count_prompt": count_prompt, "trials_per_study": trials,
                              "se_margin": se_margin}
    t0 = time.perf_counter()
    out: dict[str, Any] = {}
    if folds is not None:
        cf, results = crossfit(arrays, budgets, folds=folds, objective=objective, target=target,
                               trials=trials, seeds=seeds, split_seed=split_seed,
                               sampler_seed=sampler_seed, count_prompt=count_prompt,
                               storage=store, study_prefix=prefix, progress=progress,
                               se_margin=se_margin)
        report["split"] = {"kind": "k-fold", "folds": folds, "split_seed": split_seed,
                           "note": "every question is scored by the fold policy not tuned on "
                                   "it (out-of-fold estimate)"}
        report["heldout"] = [heldout_numbers(arrays, cf, b, heldout_seeds, count_prompt)
                             for b in budgets]
        out["crossfit"] = cf
        # The policy to deploy: the same procedure on every question (its numbers are the
        # k-fold estimate above; it has no held-out questions of its own).
        data = prepare(arrays, seeds=seeds, count_prompt=count_prompt)
        final, _ = tune_policy(data, budgets, objective=objective, target=target, trials=trials,
                               sampler_seed=sampler_seed, storage=store,
                               study_prefix=None if prefix is None else f"{prefix}-all",
                               progress=None if progress is None else
                               (lambda what, n: progress(f"all questions {what}", n)),
                               notes={"train_ids": list(arrays.problem_ids)},
                               se_margin=se_margin)
        out["policy"] = final
    else:
        train, held = split(len(arrays), heldout_fraction, split_seed)
        data = prepare(arrays.subset(train), seeds=seeds, count_prompt=count_prompt)
        notes = {"train_ids": [arrays.problem_ids[i] for i in train]}
        policy, results_ = tune_policy(data, budgets, objective=objective, target=target,
                                       trials=trials, sampler_seed=sampler_seed, storage=store,
                                       study_prefix=prefix, progress=progress, notes=notes,
                                       se_margin=se_margin)
        results = [results_]
        held_arrays = arrays.subset(held)
        report["split"] = {"kind": "train/held-out", "heldout_fraction": heldout_fraction,
                           "train": len(train), "heldout": len(held), "split_seed": split_seed,
                           "heldout_ids": [arrays.problem_ids[i] for i in held]}
        report["heldout"] = [heldout_numbers(held_arrays, policy, b, heldout_seeds, count_prompt)
                             for b in budgets]
        if objective == "pareto":
            front = []
            for lv in results_[0].front:
                pol = _policy(data, [replace(lv, from_budget=0.0)])
                front.append({"level": lv.to_dict(), **heldout_numbers(
                    held_arrays, pol, budgets[0], heldout_seeds, count_prompt)})
            report["pareto_front_heldout"] = front
        out["policy"] = policy
    report["studies"] = [[{"name": r.study_name, "trials": r.trials} for r in rs]
                         for rs in results]
    # The guard's choices (made on training questions only), per budget and fold.
    report["selection"] = [{"budget": b, "folds" if folds is not None else "split":
                            [selection_summary(rs[i]) for rs in results]}
                           for i, b in enumerate(budgets)]
    for i, entry in enumerate(report["heldout"]):
        entry["chosen"] = [rs[i].chosen for rs in results]
    report["elapsed_s"] = round(time.perf_counter() - t0, 2)
    out["report"] = report
    return out


# ---- CLI -------------------------------------------------------------------------------------
def add_cli(sub: argparse._SubParsersAction) -> None:
    """Mount `tts tune` on the CLI."""
    p = sub.add_parser(
        "tune", help="tune a policy with Optuna on a train split; report it held-out",
        description="Search policy parameters with Optuna on the train questions of a replay "
                    "bank and report accuracy and cost on held-out questions only. Writes "
                    "policy.json (usable with `tts solve --policy`, `tts sweep --policy`) and "
                    "report.json into --out.")
    p.add_argument("--bank", type=Path, default=None,
                   help="replay bank folder (default: the bundled MoT GSM8K bank)")
    p.add_argument("--objective", choices=OBJECTIVES, default="accuracy",
                   help="accuracy: max accuracy at the budget; cost: min cost at "
                        "--target-accuracy; pareto: NSGA-II accuracy/cost front")
    p.add_argument("--budget", type=float, default=None,
                   help="budget per question in units (default 262144)")
    p.add_argument("--budgets", default=None,
                   help="comma-separated increasing budgets: one tuned level each "
                        "(accuracy objective)")
    p.add_argument("--target-accuracy", type=float, default=None,
                   help="cost objective: accuracy to reach (default: the large model's "
                        "accuracy on the train questions)")
    p.add_argument("--trials", type=int, default=200, help="trials per study (default 200)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--folds", type=int, default=None,
                       help="k-fold by question (every question held out once)")
    group.add_argument("--heldout-fraction", type=float, default=0.3,
                       help="share of questions held out (default 0.3)")
    p.add_argument("--seeds", type=int, default=3,
                   help="sample orders per trial on train (default 3); held-out uses others")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and the sampler")
    p.add_argument("--storage", default=None,
                   help="Optuna RDB URL (e.g. sqlite:///tune.db): resumable, shareable by "
                        "several workers")
    p.add_argument("--study-name", default=None, help="study name prefix in --storage")
    p.add_argument("--se-margin", type=float, default=SE_MARGIN,
                   help="selection guard: keep the tuned level only if it beats the best fixed "
                        "plan on the train questions by more than this many standard errors "
                        f"of the paired per-question difference (default {SE_MARGIN:g}; 0: any "
                        "gain)")
    p.add_argument("--count-prompt", action="store_true",
                   help="also charge prompt tokens, once per prompt per model")
    p.add_argument("--ladder", default=None,
                   help="comma-separated models of the bank, cheapest first: tune a ladder "
                        "policy (votes, mixture-of-thought checks, climbing) with nested "
                        "cross-validation of its selection margin (tts.tune_ladder)")
    p.add_argument("--group-by", choices=("question", "scenario"), default="question",
                   help="ladder tuning: fold by question, or by scenario (a question's first "
                        "sentence) so whole scenarios are held out")
    p.add_argument("--max-cost-share", type=float, default=None,
                   help="ladder tuning, accuracy objective: mean cost at most this share of "
                        "the top model's")
    p.add_argument("--out", type=Path, default=Path("tune-results"),
                   help="output folder (default ./tune-results)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=_run_cli)


def _run_cli(args: argparse.Namespace) -> int:
    import shlex
    import sys

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, \
        TimeElapsedColumn
    from rich.table import Table

    import tts
    from tts.bank import load_bank
    from tts.sweep import check_writable

    if args.budget is not None and args.budgets is not None:
        raise ValidationError("give --budget or --budgets, not both.", parameter="budgets")
    if args.budgets is not None:
        try:
            budgets = [float(x) for x in args.budgets.split(",") if x.strip()]
        except ValueError:
            raise ValidationError(f"--budgets must be comma-separated numbers, got "
                                  f"{args.budgets!r}.", parameter="budgets") from None
    else:
        budgets = [args.budget if args.budget is not None else 262144.0]
    # Everything that can be refused is refused before any tuning runs.
    budgets = [check_budget(b, "--budget" if args.budgets is None else "--budgets")
               for b in budgets]
    if args.seeds < 1:
        raise ValidationError(f"--seeds must be >= 1, got {args.seeds}.", parameter="seeds")
    check_storage(args.storage)
    check_writable(args.out, ("policy.json", "report.json", "crossfit_policy.json"))
    bank_path = args.bank if args.bank is not None else tts.BUNDLED_BANK
    arrays = BankArrays.from_bank(load_bank(bank_path))
    if args.ladder is None and args.objective == "cost" and "large" in arrays.models:
        # The cost objective is the savings question: tune it on the small > large ladder.
        args.ladder = f"{arrays.models['small']},{arrays.models['large']}"
    if args.ladder is not None:
        return _run_ladder_cli(args, arrays, budgets)
    seeds = list(range(args.seed, args.seed + args.seeds))
    heldout_seeds = list(range(args.seed + 100, args.seed + 100 + args.seeds))
    err = Console(stderr=True)
    studies = (len(budgets) * ((args.folds + 1) if args.folds else 1))
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, disable=args.no_progress,
                  transient=True) as bar:
        task = bar.add_task("tuning", total=studies * args.trials)
        finished: dict[str, int] = {}

        def progress(what: str, n: int) -> None:
            finished[what] = n
            bar.update(task, completed=sum(finished.values()), description=f"tuning {what}")

        out = run_tune(arrays, objective=args.objective, budgets=budgets,
                       target=args.target_accuracy, trials=args.trials, folds=args.folds,
                       heldout_fraction=args.heldout_fraction, seeds=seeds,
                       heldout_seeds=heldout_seeds, split_seed=args.seed,
                       sampler_seed=args.seed, count_prompt=args.count_prompt,
                       storage=args.storage, study_name=args.study_name, progress=progress,
                       se_margin=args.se_margin)
    args.out.mkdir(parents=True, exist_ok=True)
    command = "tts " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == \
        ["tune"] else "tts tune (API)"
    out["report"]["command"] = command
    out["policy"].to_json(args.out / "policy.json")
    if "crossfit" in out:
        (args.out / "crossfit_policy.json").write_text(
            json.dumps(out["crossfit"].to_dict(), indent=2) + "\n", encoding="utf-8")
    (args.out / "report.json").write_text(json.dumps(out["report"], indent=2, default=float)
                                          + "\n", encoding="utf-8")
    console = Console()
    table = Table(title=f"held-out results ({out['report']['split']['kind']})")
    for col in ("budget", "questions", "accuracy", "mean cost", "escalated", "large-only acc",
                "cost share", "chosen (train)"):
        table.add_column(col, justify="right")
    for r in out["report"]["heldout"]:
        table.add_row(f"{r['budget']:,.0f}", str(r["questions"]), f"{r['accuracy']:.3f}",
                      f"{r['mean_cost']:,.0f}", f"{r['escalation_rate']:.2f}",
                      f"{r.get('large_only_accuracy', math.nan):.3f}",
                      f"{r.get('cost_share_of_large_only', math.nan):.2f}",
                      ", ".join(r.get("chosen", [])))
    console.print(table)
    console.print(f"wrote {args.out / 'policy.json'} and {args.out / 'report.json'} "
                  f"({out['report']['elapsed_s']} s)", highlight=False)
    return 0


def _run_ladder_cli(args: argparse.Namespace, arrays: BankArrays, budgets: list[float]) -> int:
    import shlex
    import sys

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, \
        TimeElapsedColumn
    from rich.table import Table

    from tts.tune_ladder import run_ladder_tune

    ladder = [m.strip() for m in args.ladder.split(",") if m.strip()]
    if args.objective == "pareto":
        raise ValidationError("ladder tuning has objectives 'cost' and 'accuracy'.",
                              parameter="objective", value=args.objective)
    if len(budgets) != 1:
        raise ValidationError("ladder tuning takes one --budget.", parameter="budgets")
    folds = args.folds if args.folds is not None else 5
    args.out.mkdir(parents=True, exist_ok=True)
    seeds = list(range(args.seed, args.seed + args.seeds))
    heldout_seeds = list(range(args.seed + 100, args.seed + 100 + args.seeds))
    err = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, disable=args.no_progress,
                  transient=True) as bar:
        task = bar.add_task("tuning", total=args.trials)

        def progress(what: str, n: int) -> None:
            bar.update(task, completed=n, description=f"tuning {what}")

        out = run_ladder_tune(arrays, ladder, objective=args.objective, budget=budgets[0],
                              target=args.target_accuracy, trials=args.trials, folds=folds,
                              group_by=args.group_by, seeds=seeds, heldout_seeds=heldout_seeds,
                              count_prompt=args.count_prompt,
                              max_cost_share=args.max_cost_share, split_seed=args.seed,
                              sampler_seed=args.seed, storage=open_storage(args.storage),
                              study_name=args.study_name, progress=progress)
    report = out["report"]
    report["command"] = "tts " + " ".join(shlex.quote(a) for a in sys.argv[1:]) \
        if sys.argv[1:2] == ["tune"] else "tts tune (API)"
    out["policy"].to_json(args.out / "policy.json")
    (args.out / "report.json").write_text(json.dumps(report, indent=2, default=float) + "\n",
                                          encoding="utf-8")
    h = report["heldout"]
    table = Table(title=f"held-out ({folds}-fold by {args.group_by}), ladder {' > '.join(ladder)}")
    for col in ("accuracy", "top-model acc", "cost share", "deployed"):
        table.add_column(col, justify="right")
    table.add_row(f"{h['accuracy']:.3f}", f"{h['large_greedy_accuracy']:.3f}",
                  f"{h['cost_share_of_large_only']:.2f}", report["deployed"]["chosen"])
    Console().print(table)
    Console().print(f"wrote {args.out / 'policy.json'} and {args.out / 'report.json'} "
                    f"({report['elapsed_s']} s)", highlight=False)
    return 0
