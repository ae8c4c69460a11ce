"""Difficulty estimators: how likely is the small model's vote to be wrong on this prompt?

Every estimator answers through one small interface, `estimate(problem, samples=()) ->
Estimate(score, tokens)`: a score in [0, 1] (higher = harder, read as P(small-model vote is
wrong)) and the generated tokens the estimate cost.

* `PromptDifficulty` (a): features of the question text alone (length, numbers, operation
  words, ...) with a logistic regression fitted by `fit` on bank labels. Costs no tokens.
  Saved as plain JSON data (`to_dict` / `from_dict`).
* `ProbeDifficulty` (b): the answer distribution of a first wave of small-model samples
  (agreement, entropy, distinct answers, abstentions; `PROBE_FEATURES`), optionally with the
  prompt model's logit as a prior, through a logistic model. Costs the probe's tokens, which
  the `Adaptive` strategy then reuses in its vote. `ProbeDifficulty.agreement()` is the
  untrained baseline 1 - agreement.
* `LogprobDifficulty` (c): 1 - exp(mean token logprob) of the probe samples, when the backend
  gives logprobs. Replay banks store none, so it raises `DifficultyUnavailable` there, and
  `auroc_report` lists it as not measurable instead of inventing a number.

`auroc_report(arrays, folds=5)` measures each estimator's AUROC for "small-model vote is wrong"
on held-out questions (k-fold by question: every score comes from a model not fitted on it).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping, Protocol, Sequence

import numpy as np
from scipy.special import expit
from scipy.stats import rankdata

from tts.answers import count_votes
from tts.errors import TTSError, ValidationError
from tts.signals import vote_signals
from tts.strategies.adaptive import probe_features, probe_logit, sigmoid
from tts.types import Completion, Problem, is_finite_number, shown

__all__ = ["Estimate", "DifficultyEstimator", "PromptDifficulty", "ProbeDifficulty",
           "LogprobDifficulty", "DifficultyUnavailable", "prompt_features", "PROMPT_FEATURES",
           "fit_logistic", "auroc", "auroc_report", "kfold"]


class DifficultyUnavailable(TTSError):
    """The estimator needs something this backend does not give (e.g. logprobs)."""


@dataclass(frozen=True, slots=True)
class Estimate:
    score: float
    """Difficulty in [0, 1]: estimated probability that the small-model vote is wrong."""
    tokens: int = 0
    """Generated tokens the estimate cost (0 for prompt features)."""


class DifficultyEstimator(Protocol):
    name: str

    def estimate(self, problem: Problem, samples: Sequence[Completion] = ()) -> Estimate:
        ...


# ---- logistic regression -----------------------------------------------------------------
def fit_logistic(x: np.ndarray, y: np.ndarray, *, l2: float = 1.0) -> np.ndarray:
    """Weights (bias first) of an L2-regularised logistic regression (Newton's method).

    The bias is not penalised. Columns of `x` should be on comparable scales.
    """
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    if x.ndim != 2 or len(x) != len(y):
        raise ValidationError(f"need x of shape (n, d) and y of length n, got {x.shape} and "
                              f"{y.shape}.", parameter="x")
    if len(y) < 2 or y.min() == y.max():
        raise ValidationError(f"a logistic model needs both labels among its {len(y)} training "
                              f"examples.", parameter="y")
    xb = np.hstack([np.ones((len(x), 1)), x])
    penalty = np.full(xb.shape[1], float(l2))
    penalty[0] = 0.0
    w = np.zeros(xb.shape[1])

    def loss(w: np.ndarray) -> float:
        z = xb @ w
        return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * np.sum(penalty * w * w))

    current = loss(w)
    for _ in range(100):
        p = expit(xb @ w)
        grad = xb.T @ (p - y) + penalty * w
        hess = (xb * (p * (1 - p))[:, None]).T @ xb + np.diag(penalty) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while t > 1e-6:  # backtracking keeps every step a descent step
            trial = w - t * step
            value = loss(trial)
            if value <= current:
                break
            t *= 0.5
        w, previous, current = trial, current, value
        if previous - current < 1e-10 * max(1.0, abs(current)):
            break
    return w


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count half); nan if one class is empty."""
    scores = np.asarray(scores, float)
    labels = np.asarray(labels, bool)
    pos, neg = labels.sum(), (~labels).sum()
    if pos == 0 or neg == 0:
        return math.nan
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


def kfold(n: int, folds: int, seed: int = 0) -> list[np.ndarray]:
    """`folds` disjoint held-out index sets covering range(n), shuffled with `seed`."""
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ValidationError(f"`folds` must be an integer >= 2, got {folds!r}.",
                              parameter="folds", value=folds)
    if n < 2 * folds:
        raise ValidationError(f"a bank of {n} problems is too small for {folds}-fold "
                              f"evaluation: each fold needs at least 2 held-out problems "
                              f"(need >= {2 * folds} problems).", parameter="folds", value=folds)
    perm = np.random.default_rng(seed).permutation(n)
    return [np.sort(part) for part in np.array_split(perm, folds)]


# ---- (a) prompt features -----------------------------------------------------------------
_NUMBER = re.compile(r"(?<![\w.])\$?\d[\d,]*(?:\.\d+)?%?")
_OPS = {
    "each": r"\beach\b", "per": r"\bper\b|\bevery\b|\ba (?:day|week|month|year|hour)\b",
    "times": r"\btimes\b|\btwice\b|\bdouble\b|\btriple\b|\bthrice\b",
    "fraction": r"\bhalf\b|\bthird\b|\bquarter\b|\d+/\d+|\bfraction\b",
    "percent": r"%|\bpercent",
    "compare": r"\bmore\b|\bless\b|\bfewer\b|\bthan\b|\blonger\b|\bshorter\b|\bolder\b",
    "remain": r"\bleft\b|\bremain|\brest\b|\bafter\b",
    "total": r"\btotal\b|\baltogether\b|\bcombined\b|\bin all\b|\bsum\b",
    "money": r"\$|\bdollars?\b|\bcents?\b|\bprice\b|\bcost",
    "time": r"\bhours?\b|\bminutes?\b|\bdays?\b|\bweeks?\b|\bmonths?\b|\byears?\b",
    "rate": r"\brate\b|\bspeed\b|\bmph\b|\baverage\b|\bprofit\b|\binterest\b",
}
PROMPT_FEATURES: tuple[str, ...] = (
    "log_chars", "log_words", "sentences", "numbers", "distinct_numbers", "log_max_number",
    "decimals", *[f"op_{k}" for k in _OPS])
"""Names of `prompt_features(question)`, in order."""


def prompt_features(question: str) -> tuple[float, ...]:
    """Cheap, deterministic features of a question (see PROMPT_FEATURES)."""
    if not isinstance(question, str):
        raise ValidationError(f"question must be a string, got {type(question).__name__}.",
                              parameter="question")
    return _prompt_features(question)


@lru_cache(maxsize=1 << 14)
def _prompt_features(question: str) -> tuple[float, ...]:
    text = question.lower()
    nums = _NUMBER.findall(question)
    values = []
    for tok in nums:
        try:
            values.append(float(tok.strip("$%").replace(",", "")))
        except ValueError:
            pass
    feats = [
        math.log1p(len(question)),
        math.log1p(len(question.split())),
        float(max(1, len(re.findall(r"[.?!](?:\s|$)", question)))),
        float(len(nums)),
        float(len(set(values))),
        math.log1p(max(values, default=0.0)),
        float(sum("." in n for n in nums)),
    ]
    feats += [float(len(re.findall(pattern, text))) for pattern in _OPS.values()]
    return tuple(feats)


@dataclass(frozen=True)
class PromptDifficulty:
    """Logistic regression on `prompt_features` (standardised); plain data, JSON-ready."""

    weights: tuple[float, ...]
    """Bias, then one weight per PROMPT_FEATURES entry (on standardised features)."""
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    name: str = "prompt"

    def __post_init__(self) -> None:
        d = len(PROMPT_FEATURES)
        if len(self.weights) != d + 1 or len(self.mean) != d or len(self.scale) != d:
            raise ValidationError(f"a prompt difficulty model needs {d + 1} weights and {d} "
                                  f"means and scales (features {', '.join(PROMPT_FEATURES)}), "
                                  f"got {len(self.weights)}, {len(self.mean)}, "
                                  f"{len(self.scale)}.", parameter="prompt")
        for v in (*self.weights, *self.mean, *self.scale):
            if not is_finite_number(v):
                raise ValidationError(f"prompt model values must be finite numbers, got "
                                      f"{shown(v)}.",
                                      parameter="prompt", value=v)
        if any(s <= 0 for s in self.scale):
            raise ValidationError("prompt model scales must be > 0.", parameter="prompt")

    @classmethod
    def fit(cls, questions: Sequence[str], wrong: Sequence[bool], *,
            l2: float = 5.0) -> PromptDifficulty:
        """Fit on questions labelled True where the small-model vote was wrong."""
        x = np.array([prompt_features(q) for q in questions], float)
        mean = x.mean(0)
        scale = x.std(0)
        scale[scale == 0] = 1.0
        w = fit_logistic((x - mean) / scale, np.asarray(wrong, bool), l2=l2)
        return cls(tuple(float(v) for v in w), tuple(float(v) for v in mean),
                   tuple(float(v) for v in scale))

    def logit(self, question: str) -> float:
        f = prompt_features(question)
        z = self.weights[0]
        for w, v, m, s in zip(self.weights[1:], f, self.mean, self.scale):
            z = z + w * ((v - m) / s)
        return z

    def logits(self, questions: Sequence[str]) -> np.ndarray:
        return np.array([self.logit(q) for q in questions])

    def estimate(self, problem: Problem, samples: Sequence[Completion] = ()) -> Estimate:
        return Estimate(sigmoid(self.logit(problem.question)), 0)

    def to_dict(self) -> dict:
        return {"features": list(PROMPT_FEATURES), "weights": list(self.weights),
                "mean": list(self.mean), "scale": list(self.scale)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PromptDifficulty:
        if not isinstance(data, Mapping):
            raise ValidationError(f"`prompt` must be an object, got {data!r}.",
                                  parameter="prompt")
        unknown = set(data) - {"features", "weights", "mean", "scale"}
        missing = {"weights", "mean", "scale"} - set(data)
        if unknown or missing:
            raise ValidationError(f"`prompt` model: unknown field(s) {sorted(unknown)}, missing "
                                  f"field(s) {sorted(missing)}; expected weights, mean, scale "
                                  f"(and features).", parameter="prompt")
        if "features" in data and data["features"] != list(PROMPT_FEATURES):
            raise ValidationError(f"`prompt.features` must be {list(PROMPT_FEATURES)}, got "
                                  f"{data['features']!r}.", parameter="prompt.features")
        if not all(isinstance(data[k], list) for k in ("weights", "mean", "scale")):
            raise ValidationError("`prompt` weights, mean and scale must be lists of numbers.",
                                  parameter="prompt")
        try:
            return cls(tuple(data["weights"]), tuple(data["mean"]), tuple(data["scale"]))
        except TypeError:
            raise ValidationError("`prompt` weights, mean and scale must be lists of numbers.",
                                  parameter="prompt") from None


# ---- (b) probe agreement -----------------------------------------------------------------
@dataclass(frozen=True)
class ProbeDifficulty:
    """Logistic model over the answer distribution of probe samples (PROBE_FEATURES)."""

    weights: tuple[float, ...]
    """Bias, then one weight per PROBE_FEATURES entry (raw, unstandardised features)."""
    name: str = "probe"

    @classmethod
    def agreement(cls) -> ProbeDifficulty:
        """Untrained baseline: logit grows as agreement falls (ranks like 1 - agreement)."""
        return cls((0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0), name="probe-agreement")

    @classmethod
    def fit(cls, features: np.ndarray, wrong: np.ndarray, *, l2: float = 1.0) -> ProbeDifficulty:
        w = fit_logistic(features, wrong, l2=l2)
        return cls(tuple(float(v) for v in w))

    def logit_of(self, answers: Sequence[str | None], prior: float = 0.0) -> float:
        if not answers:
            raise ValidationError("probe difficulty needs at least one sample.",
                                  parameter="samples")
        return probe_logit(self.weights, probe_features(count_votes(answers), len(answers),
                                                        prior))

    def estimate(self, problem: Problem, samples: Sequence[Completion] = (),
                 prior: float = 0.0) -> Estimate:
        score = sigmoid(self.logit_of([c.answer for c in samples], prior))
        return Estimate(score, sum(c.tokens for c in samples))


# ---- (c) logprob confidence --------------------------------------------------------------
@dataclass(frozen=True)
class LogprobDifficulty:
    """1 - exp(mean token logprob) averaged over the probe samples; needs backend logprobs."""

    name: str = "logprob"

    @staticmethod
    def available(samples: Sequence[Completion]) -> bool:
        return bool(samples) and all(c.mean_logprob is not None for c in samples)

    def estimate(self, problem: Problem, samples: Sequence[Completion] = ()) -> Estimate:
        if not self.available(samples):
            raise DifficultyUnavailable(
                "logprob difficulty needs samples with mean_logprob; this backend gave none "
                "(replay banks store no logprobs; ask a live backend with logprobs=True).")
        conf = sum(math.exp(c.mean_logprob) for c in samples) / len(samples)  # type: ignore
        return Estimate(min(1.0, max(0.0, 1.0 - conf)), sum(c.tokens for c in samples))


# ---- training data and held-out report ---------------------------------------------------
def vote_wrong(arrays, *, seed: int | None = 0) -> np.ndarray:
    """Label per problem: the small-model vote over every stored sample is wrong."""
    small = arrays.models["small"]
    m = arrays.mode(small, "sample")
    pre = arrays.prefix(small, "sample", seed, int(m.tokens.max(initial=1)))
    return ~pre.leader_correct[np.arange(len(arrays)), m.size]


def probe_matrix(arrays, ks: Sequence[int], seeds: Sequence[int | None],
                 prior: np.ndarray | None = None,
                 max_tokens: int = 512) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PROBE_FEATURES rows for every (seed, k, problem) with an answer among the first k
    samples, the label "vote over those k is wrong", and each row's problem index."""
    small = arrays.models["small"]
    m = arrays.mode(small, "sample")
    p = len(arrays)
    idx = np.arange(p)
    prior = np.zeros(p) if prior is None else np.asarray(prior, float)
    xs, ys, rows = [], [], []
    for seed in seeds:
        pre = arrays.prefix(small, "sample", seed, max_tokens)
        for k in ks:
            kk = np.minimum(k, m.size)
            ok = (kk > 0) & (pre.total[idx, kk] > 0)
            ks_ = np.maximum(kk, 1)
            feats = np.stack([*vote_signals(pre.agreement[idx, kk], pre.entropy[idx, kk],
                                            kk - pre.total[idx, kk], pre.distinct[idx, kk],
                                            ks_), prior], axis=1)
            xs.append(feats[ok])
            ys.append(~pre.leader_correct[idx, kk][ok])
            rows.append(idx[ok])
    return np.vstack(xs), np.concatenate(ys), np.concatenate(rows)


def cross_fit_prior(arrays, train: np.ndarray, *, folds: int = 5, seed: int = 0,
                    labels: np.ndarray | None = None) -> np.ndarray:
    """Out-of-fold prompt logits for the `train` problems (so a probe model trained on them
    sees priors as noisy as on new questions)."""
    labels = vote_wrong(arrays) if labels is None else labels
    out = np.zeros(len(train))
    for part in kfold(len(train), min(folds, len(train) // 2), seed):
        fit_on = np.setdiff1d(np.arange(len(train)), part)
        y = labels[train[fit_on]]
        if y.min() == y.max():
            continue
        model = PromptDifficulty.fit([arrays.questions[i] for i in train[fit_on]], y)
        out[part] = model.logits([arrays.questions[i] for i in train[part]])
    return out


def auroc_report(arrays, *, folds: int = 5, seed: int = 0,
                 probe_sizes: Sequence[int] = (4, 8)) -> dict[str, Any]:
    """Held-out AUROC of each estimator for "the small-model vote (all samples) is wrong".

    Prompt and learned-probe models are fitted on the other folds only. Probe estimators
    see the first k samples of stream `seed`.
    """
    labels = vote_wrong(arrays, seed=seed)
    n = len(arrays)
    folds_ = kfold(n, folds, seed)
    prompt_scores = np.zeros(n)
    learned = {k: np.zeros(n) for k in probe_sizes}
    raw = {k: np.zeros(n) for k in probe_sizes}
    for held in folds_:
        train = np.setdiff1d(np.arange(n), held)
        model = PromptDifficulty.fit([arrays.questions[i] for i in train], labels[train])
        prompt_scores[held] = model.logits([arrays.questions[i] for i in held])
        prior_train = cross_fit_prior(arrays, train, seed=seed, labels=labels)
        sub_train, sub_held = arrays.subset(train), arrays.subset(held)
        for k in probe_sizes:
            x, _, r = probe_matrix(sub_train, [k], [seed], prior_train)
            probe = ProbeDifficulty.fit(x, labels[train][r])
            xh, _, rh = probe_matrix(sub_held, [k], [seed], prompt_scores[held])
            z = np.full(len(held), np.inf)  # no answer among the probe: surely hard
            z[rh] = xh @ np.array(probe.weights[1:]) + probe.weights[0]
            learned[k][held] = z
            a = np.ones(len(held))
            a[rh] = 1.0 - xh[:, 0]
            raw[k][held] = a
    out: dict[str, Any] = {
        "label": "small-model majority vote over all stored samples is wrong",
        "positives": int(labels.sum()), "problems": n, "folds": folds,
        "prompt_features": auroc(prompt_scores, labels),
    }
    for k in probe_sizes:
        out[f"probe_agreement@{k}"] = auroc(raw[k], labels)
        out[f"probe_learned@{k}"] = auroc(learned[k], labels)
    out["logprob"] = None
    out["logprob_note"] = ("not measurable: the replay bank stores no logprobs "
                           "(LogprobDifficulty raises DifficultyUnavailable there)")
    return out
