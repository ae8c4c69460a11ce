"""A router inside ladders: as a policy's prompt prior (the `prior` climb feature and a rung's
`skip_above`), stored in policy files, exact between the engine and the evaluator, and fitted
by the tuner (`tts tune --prior router`) with cross-fitted logits."""

import numpy as np
import pytest

import tts
from tts.bank import load_bank
from tts.evaluate import BankArrays, evaluate
from tts.policy import load_policy, single_level
from tts.strategies.ladder import Rung

TWO = ["gpt-3.5-turbo", "gpt-4"]
DATE = BankArrays.from_bank(load_bank(tts.BUNDLED_DATE_BANK)).with_ladder(TWO)


@pytest.fixture(scope="module")
def embed_models(pulled_embed):
    return pulled_embed


def test_a_router_prior_policy_round_trips_and_the_engine_equals_the_evaluator(
        embed_models, tmp_path):
    from tts.routing.prior import RouterPrior
    from tts.tuning.priors import fit_prior

    sub = DATE.subset(range(60))
    prior, oof = fit_prior(sub, "router")
    assert isinstance(prior, RouterPrior) and oof.shape == (60,) and np.isfinite(oof).all()
    weights = (0.0,) * 8 + (1.0, 0.0)  # the score is the router's difficulty logit alone
    z = prior.logits(sub.questions)
    above = float(1 / (1 + np.exp(-np.quantile(z, 0.75))))  # the hardest quarter skips
    rungs = (Rung(role="small", mode="pot", wave=4, max_samples=8, climb_below=0.6,
                  climb_above=0.7, weights=weights, skip_above=above),
             Rung(role="large", mode="greedy", temperature=0.0, max_samples=1, wave=1))
    policy = single_level(TWO, rungs, prior)
    path = tmp_path / "policy.json"
    policy.to_json(path)
    loaded = load_policy(path)
    assert isinstance(loaded.prompt, RouterPrior)
    logits = loaded.prompt.logits(sub.questions)
    assert np.allclose(logits, prior.logits(sub.questions))
    ev = evaluate(sub, loaded, 262144, [0], count_prompt=True)
    engine = tts.replay_engine(tts.BUNDLED_DATE_BANK, ladder=TWO, policy=loaded,
                               count_prompt=True)
    results = engine.solve_many([sub.bank.problems[p] for p in sub.problem_ids], 262144)
    assert [r.cost for r in results] == ev.cost[0].tolist()
    assert [r.escalated for r in results] == ev.escalated[0].tolist()
    skipped = logits >= np.log(above / (1 - above))  # straight to GPT-4
    assert skipped.any() and (~skipped).any(), "the router should skip some, not all"
    for r, s in zip(results, skipped):
        assert ("gpt-3.5-turbo" not in r.tokens) == bool(s)


def test_tune_with_a_router_prior(embed_models):
    from tts.routing.prior import RouterPrior
    from tts.tuning import run_tune

    out = run_tune(DATE.subset(range(80)), TWO, objective="accuracy", max_cost_share=0.5,
                   trials=6, folds=2, seeds=(0,), heldout_seeds=(5,), margin=1.0,
                   prior="router")
    policy = out["policy"]
    assert isinstance(policy.prompt, RouterPrior) and policy.notes["prior"] == "router"
    assert 0 <= out["report"]["heldout"]["accuracy"] <= 1


def test_a_router_prior_for_another_tier_is_refused(embed_models):
    from tts.errors import UnknownNameError
    from tts.routing.prior import RouterPrior
    from tts.tuning.priors import fit_prior

    prior, _ = fit_prior(DATE.subset(range(40)), "router")
    with pytest.raises(UnknownNameError, match="not fitted for tier 'gpt-9'"):
        RouterPrior(prior.router, "gpt-9")
