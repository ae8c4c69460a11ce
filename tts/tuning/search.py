"""One study and its selection: the most accurate plan within a cost cap (`search`), chosen
over the fixed plans only by a margin (`select_candidate`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from tts.evaluate import BankArrays, Evaluation, evaluate
from tts.measures import paired_difference
from tts.policy import single_level
from tts.strategies.ladder import Rung
from tts.tuning.data import LadderData
from tts.tuning.space import baselines, mixes, suggest_rungs
from tts.tuning.studies import claim_study

RERANK = 8
FORMAT = "tts-ladder-tune/1"


# ---- one tuning run -------------------------------------------------------------------------
@dataclass
class Candidate:
    name: str
    rungs: tuple[Rung, ...]
    ev: Evaluation
    params: dict[str, Any] | None = None
    """A trial's parameters (None for a fixed plan): the plan can be rebuilt on other
    training questions (`suggest_rungs` of a FixedTrial), which cross-fits it."""

    def share(self, data: LadderData) -> float:
        """Mean cost as a share of the top model's on the training questions."""
        return self.ev.mean_cost / data.ref_cost

    def within(self, data: LadderData, cap: float | None) -> bool:
        """Whether its cost share meets `cap`, up to one standard error (`over_cap`)."""
        return over_cap(self.share(data), cap, self.share_se(data)) == 0.0

    def share_se(self, data: LadderData) -> float:
        return share_se(self.ev, data)


@dataclass
class TuneRun:
    """What `tune_ladder` found on one training set."""

    data: LadderData
    candidates: list[Candidate]
    trials: int
    study_name: str
    max_cost_share: float | None = None
    margin: float = 0.0
    rule: dict[str, Any] = field(default_factory=dict)
    """How the nested cross-validation chose the cap and margin (inner held-out numbers)."""
    chosen: Candidate | None = None
    selection: dict[str, Any] = field(default_factory=dict)


def score_plan(data: LadderData, rungs: Sequence[Rung], seeds: Sequence[int],
               arrays: BankArrays | None = None) -> Evaluation:
    """Rungs (with `data`'s prompt model for the prior) on `arrays` (default: training)."""
    return evaluate(data.arrays if arrays is None else arrays,
                    single_level(data.ladder, rungs, data.prompt), data.budget, seeds,
                    count_prompt=data.count_prompt)


def _value(ev: Evaluation, data: LadderData, max_cost_share: float | None) -> float:
    """Minimised: -(accuracy), cost share breaking ties, any excess over the cap (beyond one
    standard error, as in `select_candidate`) ranked below every plan within it."""
    share = ev.mean_cost / data.ref_cost
    over = over_cap(share, max_cost_share, share_se(ev, data))
    return -(ev.accuracy - 1e-4 * share) + (5.0 + 10.0 * over if over > 0 else 0.0)


def share_se(ev: Evaluation, data: LadderData) -> float:
    """Standard error of a plan's cost share over the questions (costs averaged over seeds):
    a cap is met up to it, in the search and in the selection alike."""
    per_question = ev.cost.mean(0) / data.ref_cost
    n = len(per_question)
    return float(per_question.std(ddof=1) / n ** 0.5) if n > 1 else 0.0


def over_cap(share: float, cap: float | None, slack: float = 0.0) -> float:
    """How far a cost share lies over `cap` (0.0 within it, and without a cap). Shares equal
    up to rounding count as within (the top model's own share, averaged over other seeds
    than its reference, can come out as 1.0000000000000002), and so do shares within
    `slack` over it."""
    if cap is None or share <= cap * (1.0 + 1e-9) + slack:
        return 0.0
    return share - cap


def search(data: LadderData, *, trials: int, max_cost_share: float | None = None,
           sampler_seed: int = 0, storage: Any = None, study_name: str | None = None,
           progress: Callable[[int], None] | None = None) -> TuneRun:
    """Run (or resume) the study "most accurate within `max_cost_share` of the top model's
    cost"; candidates are its best trials re-scored with twice the seeds, plus fixed plans."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cap = "none" if max_cost_share is None else f"{max_cost_share:g}"
    # A space with mixed votes is another search: its studies neither share a name with,
    # nor resume, those stored before it existed (one-mode banks keep theirs).
    mixed = mixes(data)
    name = study_name or f"tts-ladder-{data.fingerprint}-cap{cap}{'-mix' if mixed else ''}"
    study = optuna.create_study(study_name=name, storage=storage, direction="minimize",
                                sampler=optuna.samplers.TPESampler(
                                    seed=sampler_seed, n_startup_trials=min(25, trials)),
                                load_if_exists=True)
    claim_study(study, name, {"fingerprint": data.fingerprint, "format": FORMAT,
                              "max_cost_share": max_cost_share,
                              **({"space": "mix"} if mixed else {})})
    started = len(study.get_trials(deepcopy=False))
    if started:  # a resumed study, or another worker's: do not replay the first proposals
        study.sampler = optuna.samplers.TPESampler(seed=sampler_seed + started,
                                                   n_startup_trials=min(25, trials))

    def run(trial):
        ev = score_plan(data, suggest_rungs(trial, data), data.seeds)
        trial.set_user_attr("accuracy", ev.accuracy)
        trial.set_user_attr("cost_share", ev.mean_cost / data.ref_cost)
        return _value(ev, data, max_cost_share)

    def done() -> int:
        return sum(t.state == optuna.trial.TrialState.COMPLETE
                   for t in study.get_trials(deepcopy=False))

    # Every worker on a shared study stops once it holds `trials` completed trials.
    callbacks: list = [optuna.study.MaxTrialsCallback(
        trials, states=(optuna.trial.TrialState.COMPLETE,))]
    if progress is not None:
        progress(done())
        callbacks.append(lambda s, t: progress(done()))
    remaining = trials - done()
    if remaining > 0:
        study.optimize(run, n_trials=remaining, callbacks=callbacks)
    complete = sorted((t for t in study.get_trials(deepcopy=False)
                       if t.state == optuna.trial.TrialState.COMPLETE),
                      key=lambda t: (t.value, t.number))
    seeds = tuple(data.seeds) + tuple(s + 7919 for s in data.seeds)
    candidates: list[Candidate] = []
    seen: set[str] = set()
    for t in complete:
        # The best RERANK trials; and should re-scoring push every one of them over the cap
        # (trials near it are the most accurate), the next ones in order until one stays
        # within it, so a cap never falls back on a far cheaper, far worse plan.
        if len(candidates) >= RERANK and (max_cost_share is None or any(
                c.within(data, max_cost_share) for c in candidates)) \
                or len(candidates) >= 4 * RERANK:
            break
        rungs = suggest_rungs(optuna.trial.FixedTrial(t.params), data)
        if repr(rungs) not in seen:
            seen.add(repr(rungs))
            candidates.append(Candidate(f"trial-{t.number}", rungs,
                                        score_plan(data, rungs, seeds), dict(t.params)))
    for nm, rungs in baselines(data).items():
        candidates.append(Candidate(nm, rungs, score_plan(data, rungs, seeds)))
    return TuneRun(data, candidates, done(), name, max_cost_share)


def select_candidate(run: TuneRun, margin: float) -> tuple[Candidate, dict[str, Any]]:
    """Step 4 of the module docstring, on the training questions: the most accurate
    candidate within the run's cost cap, kept over the best fixed plan within the cap only
    if it wins by more than `margin` standard errors of the paired difference."""
    data, cap = run.data, run.max_cost_share

    def share(c: Candidate) -> float:
        return c.share(data)

    # A cap is a measured share: a plan within one standard error over it is not shown to
    # break it, so it stays eligible (else a plan 0.25 points over a 20% cap in training
    # flips the deployed plan to a much worse one).
    ok = [c for c in run.candidates if c.within(data, cap)]
    if not ok:
        ok = [min(run.candidates, key=share)]
    best = max(ok, key=lambda c: (c.ev.accuracy, -c.ev.mean_cost))
    record: dict[str, Any] = {"train_accuracy": best.ev.accuracy,
                              "train_cost_share": share(best), "margin": margin}
    fixed = [c for c in ok if not c.name.startswith("trial-")]
    if not fixed or not best.name.startswith("trial-"):
        return best, {**record, "chosen": best.name,
                      "reason": "best within the cap" if not fixed else "a fixed plan is best"}
    base = max(fixed, key=lambda c: (c.ev.accuracy, -c.ev.mean_cost))
    mean, se = paired_difference(best.ev.correct.mean(0) - base.ev.correct.mean(0))
    pick = best if mean > margin * se else base
    return pick, {**record, "chosen": pick.name, "baseline": base.name, "mean_diff": mean,
                  "se": se, "train_accuracy": pick.ev.accuracy,
                  "train_cost_share": share(pick),
                  "reason": f"tuned vs {base.name}: {mean:+.4f} "
                            f"{'>' if pick is best else '<='} {margin:g} x SE {se:.4f}"}
