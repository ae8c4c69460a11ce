"""Vote tallies over answer equivalence classes: plain (`count_votes`), confidence-weighted
(`count_weighted_votes`), and class ids for the vectorised evaluator (`class_ids`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tts.answers.equivalence import _keys_equivalent, canonical

# ---------------------------------------------------------------------------------------------
# Votes


def _classes(answers: Iterable[Any]) -> tuple[list[int], list[str]]:
    """Class id per answer (-1 for None) and each class's first-seen member.

    An answer joins the first earlier class whose representative it is equivalent to. Keys seen
    before reuse their class, so each distinct key is compared at most once per class.
    """
    ids: list[int] = []
    reps: list[str] = []
    rep_keys: list[str] = []
    key_class: dict[str, int] = {}
    for answer in answers:
        if answer is None:
            ids.append(-1)
            continue
        if not isinstance(answer, str):
            answer = str(answer)
        key = canonical(answer)
        cid = key_class.get(key)
        if cid is None:
            cid = next(
                (i for i, rep_key in enumerate(rep_keys) if _keys_equivalent(key, rep_key)),
                len(reps),
            )
            if cid == len(reps):
                reps.append(answer)
                rep_keys.append(key)
            key_class[key] = cid
        ids.append(cid)
    return ids, reps


@dataclass(frozen=True, slots=True)
class Votes:
    """Tally of answers over equivalence classes."""

    counts: tuple[tuple[str, int], ...]
    """(representative answer = first-seen member, count), by count descending; ties keep the
    class seen first in front."""
    abstained: int = 0
    """Samples with no answer (None)."""

    @property
    def leader(self) -> str | None:
        """The winning answer, or None when every sample abstained."""
        return self.counts[0][0] if self.counts else None

    @property
    def top(self) -> int:
        """Votes for the leader."""
        return self.counts[0][1] if self.counts else 0

    @property
    def runner_up(self) -> int:
        """Votes for the second class (0 if there is none)."""
        return self.counts[1][1] if len(self.counts) > 1 else 0

    @property
    def total(self) -> int:
        """Non-abstaining samples."""
        return sum(count for _, count in self.counts)

    @property
    def agreement(self) -> float:
        """Share of answering samples that back the leader (0.0 with no answers)."""
        total = self.total
        return self.top / total if total else 0.0

    @property
    def distinct(self) -> int:
        """Number of equivalence classes."""
        return len(self.counts)

    @property
    def entropy(self) -> float:
        """Natural-log entropy of the class distribution (0.0 with no answers)."""
        total = self.total
        if not total:
            return 0.0
        return -sum(c / total * math.log(c / total) for _, c in self.counts if c)

    def as_dict(self) -> dict[str, int]:
        """{representative: count}, in `counts` order."""
        return dict(self.counts)


def count_votes(answers: Iterable[str | None]) -> Votes:
    """Group answers into equivalence classes and tally them.

    Equal canonical keys share a class without further work; differing keys that are both
    plain numbers are compared with the numeric tolerance; only the rest reach math-verify.
    """
    ids, reps = _classes(answers)
    tally = [0] * len(reps)
    for cid in ids:
        if cid >= 0:
            tally[cid] += 1
    order = sorted(range(len(reps)), key=lambda i: -tally[i])  # stable: ties stay first-seen
    return Votes(
        counts=tuple((reps[i], tally[i]) for i in order), abstained=ids.count(-1)
    )


def kept_count(keep: float, n: int) -> int:
    """How many of `n` answering samples a `keep` filter keeps: ceil(keep * n), at least one
    when n >= 1. Float noise is forgiven (0.14 of 50 keeps 7, although 0.14 * 50 > 7 in floats)."""
    if n <= 0:
        return 0
    return max(1, math.ceil(keep * n - 1e-9))


@dataclass(frozen=True, slots=True)
class WeightedVotes:
    """A confidence-weighted, optionally filtered tally (`count_weighted_votes`)."""

    votes: Votes
    """Sample counts of the classes that voted, leader first: classes are ordered by summed
    weight, descending, ties keeping the class seen first (so `votes.leader` is the weighted
    leader, `votes.top` its sample count, `votes.agreement` its share of the counted samples)."""
    weights: tuple[float, ...]
    """Summed weight of each class, in `votes.counts` order."""
    total_weight: float
    """Summed weight of every counted sample, added in draw order."""
    dropped: int = 0
    """Answering samples the `keep` filter left out."""
    members: tuple[int, ...] = ()
    """Indices (into the answers) of the counted samples voting for the leader, in draw
    order (what `tts.signals.leader_conf` averages)."""

    @property
    def leader(self) -> str | None:
        return self.votes.leader

    @property
    def top_weight(self) -> float:
        return self.weights[0] if self.weights else 0.0

    @property
    def runner_up_weight(self) -> float:
        return self.weights[1] if len(self.weights) > 1 else 0.0

    def effective_counts(self) -> tuple[float, float]:
        """(leader, runner-up) weights rescaled to sample counts: each times n / total_weight,
        n the counted samples. The Beta stop test then sees as many votes as were counted,
        split between the two classes as their confidence says (weights of 1 give the plain
        counts). (0.0, 0.0) when nothing was counted or every weight is 0."""
        n, total = self.votes.total, self.total_weight
        if not total > 0:
            return 0.0, 0.0
        return self.top_weight * n / total, self.runner_up_weight * n / total


def count_weighted_votes(answers: Sequence[str | None], confidences: Sequence[float | None], *,
                         weighted: bool = True, keep: float = 1.0) -> WeightedVotes:
    """Tally answers with one confidence per sample (DeepConf, Fu et al. 2025).

    `keep` < 1 first keeps only the `kept_count(keep, n)` most confident of the n answering
    samples (ties by sample order); `weighted` makes each kept sample count its confidence
    instead of 1. Weights are summed one sample at a time in draw order (never `sum()`, which
    compensates rounding), so `tts.evaluate` reproduces the floats exactly. Samples without an
    answer abstain and need no confidence; an answering sample without one is a ValueError
    (callers name the option and the model first).
    """
    if len(confidences) != len(answers):
        raise ValueError(f"{len(answers)} answers but {len(confidences)} confidences.")
    voting = [i for i, a in enumerate(answers) if a is not None]
    if weighted or keep < 1.0:
        for i in voting:
            if confidences[i] is None:
                raise ValueError(f"sample {i} has an answer but no confidence.")
    counted = voting
    if keep < 1.0:
        ranked = sorted(voting, key=lambda i: -confidences[i])  # type: ignore[operator]
        counted = sorted(ranked[:kept_count(keep, len(voting))])  # stable: ties by order
    ids, reps = _classes(answers[i] for i in counted)
    tally = [0.0] * len(reps)
    sizes = [0] * len(reps)
    total = 0.0
    for cid, i in zip(ids, counted):
        w = float(confidences[i]) if weighted else 1.0  # type: ignore[arg-type]
        tally[cid] = tally[cid] + w
        sizes[cid] += 1
        total = total + w
    order = sorted(range(len(reps)), key=lambda c: -tally[c])  # stable: ties stay first-seen
    votes = Votes(counts=tuple((reps[c], sizes[c]) for c in order),
                  abstained=len(answers) - len(voting))
    members = tuple(i for cid, i in zip(ids, counted) if order and cid == order[0])
    return WeightedVotes(votes, tuple(tally[c] for c in order), total,
                         dropped=len(voting) - len(counted), members=members)


def class_ids(answers: Sequence[str | None]) -> list[int]:
    """Equivalence-class id per answer (-1 for None), numbered by first appearance.

    Lets callers precompute vote arrays once and tally any subset of samples with numpy.
    """
    return _classes(answers)[0]
