"""Difficulty estimators: one interface, plain-data models, honest held-out AUROC."""

import itertools
import math

import numpy as np
import pytest

import tts
from tts.bank import load_bank
from tts.difficulty import (PROMPT_FEATURES, DifficultyUnavailable, Estimate,
                            LogprobDifficulty, ProbeDifficulty, PromptDifficulty, auroc,
                            auroc_report, fit_logistic, kfold, probe_matrix, prompt_features,
                            vote_wrong)
from tts.errors import ValidationError
from tts.evaluate import BankArrays
from tts.types import Completion, Problem

from .conftest import make_bank


@pytest.fixture(scope="module")
def arrays():
    return BankArrays.from_bank(load_bank(tts.BUNDLED_BANK))


def test_prompt_features_are_deterministic_and_named():
    q = "Tom buys 3 apples at $1.50 each and 20% more pears. How much does he pay in total?"
    f = prompt_features(q)
    assert len(f) == len(PROMPT_FEATURES) and f == prompt_features(q)
    named = dict(zip(PROMPT_FEATURES, f))
    assert named["numbers"] == 3 and named["decimals"] == 1
    assert named["op_percent"] >= 1 and named["op_each"] == 1 and named["op_money"] >= 1
    with pytest.raises(ValidationError, match="must be a string"):
        prompt_features(None)


def test_auroc_matches_pairwise_definition():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, 40).astype(float)  # many ties
    labels = rng.random(40) < 0.4
    pos, neg = scores[labels], scores[~labels]
    brute = np.mean([1.0 if p > n else 0.5 if p == n else 0.0
                     for p, n in itertools.product(pos, neg)])
    assert auroc(scores, labels) == pytest.approx(brute)
    assert math.isnan(auroc([1, 2], [True, True]))


def test_logistic_regression_finds_the_signal():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 3))
    y = rng.random(400) < 1 / (1 + np.exp(-(0.5 + 2 * x[:, 0] - x[:, 2])))
    w = fit_logistic(x, y, l2=0.1)
    assert w[1] > 1.0 and w[3] < -0.4 and abs(w[2]) < 0.4
    with pytest.raises(ValidationError, match="both labels"):
        fit_logistic(x, np.zeros(400, bool))


def test_prompt_model_round_trips_as_plain_data(arrays):
    labels = vote_wrong(arrays)
    model = PromptDifficulty.fit(arrays.questions[:200], labels[:200])
    again = PromptDifficulty.from_dict(model.to_dict())
    assert again == model
    est = model.estimate(Problem(arrays.questions[250]))
    assert isinstance(est, Estimate) and 0 <= est.score <= 1 and est.tokens == 0
    with pytest.raises(ValidationError, match="unknown field"):
        PromptDifficulty.from_dict({**model.to_dict(), "x": 1})
    with pytest.raises(ValidationError, match="needs 19 weights"):
        PromptDifficulty.from_dict({**model.to_dict(), "weights": [0.0]})


def test_probe_estimate_costs_its_tokens_and_ranks_agreement():
    probe = ProbeDifficulty.agreement()
    agree = [Completion(text=None, answer="7", tokens=50) for _ in range(4)]
    split = [Completion(text=None, answer=a, tokens=60) for a in ("1", "2", "3", "1")]
    e1, e2 = probe.estimate(Problem("q?"), agree), probe.estimate(Problem("q?"), split)
    assert e1.tokens == 200 and e2.tokens == 240
    assert 0 <= e1.score < e2.score <= 1
    with pytest.raises(ValidationError, match="at least one sample"):
        probe.estimate(Problem("q?"), [])


def test_logprob_estimator_says_when_it_cannot_measure():
    est = LogprobDifficulty()
    replayed = [Completion(text=None, answer="1", tokens=10)]
    assert not est.available(replayed)
    with pytest.raises(DifficultyUnavailable, match="no logprobs"):
        est.estimate(Problem("q?"), replayed)
    live = [Completion(text="x", answer="1", tokens=10, mean_logprob=math.log(0.9)),
            Completion(text="y", answer="2", tokens=12, mean_logprob=math.log(0.5))]
    e = est.estimate(Problem("q?"), live)
    assert e.score == pytest.approx(1 - 0.7) and e.tokens == 22


def test_probe_matrix_labels_match_the_vote(arrays):
    x, y, rows = probe_matrix(arrays, [20], [0])
    assert x.shape[1] == 6 and len(y) == len(rows) == 300
    assert np.array_equal(y, vote_wrong(arrays)[rows])


def test_kfold_and_too_small_banks():
    parts = kfold(10, 5, seed=3)
    assert sorted(np.concatenate(parts).tolist()) == list(range(10))
    with pytest.raises(ValidationError, match="too small for 5-fold"):
        kfold(9, 5)
    with pytest.raises(ValidationError, match="too small for 5-fold"):
        auroc_report(BankArrays.from_bank(make_bank(n_problems=4)))


def test_heldout_auroc_report_on_the_bundled_bank(arrays):
    report = auroc_report(arrays, folds=5, probe_sizes=(4, 20))
    assert report["problems"] == 300 and report["positives"] == int(vote_wrong(arrays).sum())
    for key in ("prompt_features", "probe_agreement@4", "probe_learned@4",
                "probe_agreement@20", "probe_learned@20"):
        assert 0.0 <= report[key] <= 1.0
    # Agreement of more samples separates wrong votes better than fewer (measured: 0.71 at 4,
    # 0.80 at 20) and better than the prompt alone (0.57).
    assert report["probe_agreement@20"] > report["probe_agreement@4"] > 0.6
    assert report["logprob"] is None and "no logprobs" in report["logprob_note"]
