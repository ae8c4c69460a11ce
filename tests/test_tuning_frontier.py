"""What `tts tune` writes into policy.json for deployment (issue 25, item 2): the deployed
policy's expected disagreement with the top model (cross-fitted, 95% interval) and a frontier
of safer plans, cheapest to safest, the top model alone last; read back, checked, by
`tts.policy.policy_expected` / `policy_frontier`."""

import copy
import json

import numpy as np
import pytest

import tts
from tts.bank import load_bank
from tts.errors import ValidationError
from tts.evaluate import BankArrays, evaluate
from tts.policy import LadderPolicy, load_policy, policy_expected, policy_frontier
from tts.tuning import run_tune
from tts.tuning.frontier import safer
from tts.tuning.reference import agreement_arrays

DATE = BankArrays.from_bank(load_bank(tts.BUNDLED_DATE_BANK))
TWO = ["gpt-3.5-turbo", "gpt-4"]


@pytest.fixture(scope="module")
def tuned():
    return run_tune(DATE, TWO, objective="accuracy", max_cost_share=0.3, trials=6, folds=2,
                    group_by="scenario", seeds=(0,), heldout_seeds=(5,))


def test_policy_states_its_expected_disagreement_and_a_frontier(tuned, tmp_path):
    path = tmp_path / "policy.json"
    tuned["policy"].to_json(path)
    policy = load_policy(path)
    expected = policy_expected(policy)
    report = tuned["report"]["deployed"]["expected_heldout"]
    assert expected["disagreement"] == pytest.approx(report["disagreement"])
    lo, hi = expected["disagreement_ci95"]
    assert 0 <= lo <= expected["disagreement"] <= hi <= 1
    assert expected["reference"] == "gold" and expected["questions"] == len(DATE)
    plans = policy_frontier(policy)
    assert plans, "a frontier always ends with the top model alone"
    dis = [e["disagreement"] for _, e in plans]
    assert dis == sorted(dis, reverse=True) and all(d < expected["disagreement"]
                                                    for d in dis[:-1])
    top, top_expected = plans[-1]
    assert isinstance(top, LadderPolicy) and top.ladder == tuple(TWO)
    assert [r.role for r in top.levels[0].rungs] == ["large"]
    assert top_expected["cost_share"] == pytest.approx(1.0)
    agree = agreement_arrays(DATE.with_ladder(TWO), "gpt-4")
    for plan, e in plans:  # each plan runs on the bank as it is
        ev = evaluate(agree, plan, 262144, [5], count_prompt=True)
        assert 0 <= ev.accuracy <= 1
    assert evaluate(agree, top, 262144, [5], count_prompt=True).accuracy == 1.0
    assert top_expected["disagreement"] == 0.0


def test_heldout_disagreement_is_the_crossfit_policys_disagreement(tuned):
    """The report's held-out disagreement is what the outer folds' policies (each on the
    questions it never saw) score against the top model's greedy answer."""
    agree = agreement_arrays(DATE.with_ladder(TWO), "gpt-4")
    ev = evaluate(agree, tuned["crossfit"], 262144, [5], count_prompt=True)
    h = tuned["report"]["heldout"]
    assert h["disagreement"] == pytest.approx(1.0 - ev.accuracy)
    gold = evaluate(DATE.with_ladder(TWO), tuned["crossfit"], 262144, [5], count_prompt=True)
    assert h["accuracy"] == pytest.approx(gold.accuracy)
    assert all(f["heldout_disagreement"] is not None for f in tuned["report"]["folds_detail"])


def _entry(name, cost, dis, ci=None):
    return {"name": name, "expected": {"cost_share": cost, "disagreement": dis,
                                       "disagreement_ci95": list(ci or (dis, dis))}}


def test_frontier_keeps_only_safer_plans_cheapest_first():
    entries = [_entry("cap 0.1", 0.1, 0.20), _entry("cap 0.2", 0.2, 0.05),
               _entry("cap 0.3", 0.3, 0.08), _entry("cap 0.45", 0.45, 0.02),
               _entry("cap 0.6", 0.6, 0.02), _entry("top-model", 1.0, 0.0)]
    kept = safer(entries, {"disagreement": 0.1})
    assert [e["name"] for e in kept] == ["cap 0.2", "cap 0.45", "top-model"]
    assert safer(entries, {"disagreement": 0.0}) == []
    tie = [_entry("cap 1", 1.0, 0.0), _entry("top-model", 1.0, 0.0)]
    assert [e["name"] for e in safer(tie, {"disagreement": 0.1})] == ["top-model"]
    # A budget that cannot pay for the top model: alone, it is not the safest plan.
    poor = [_entry("cap 0.3", 0.3, 0.04), _entry("top-model", 1.0, 0.5)]
    assert [e["name"] for e in safer(poor, {"disagreement": 0.1})] == ["cap 0.3"]
    # A step must be shown to be safer: its interval below the previous plan's disagreement.
    noisy = [_entry("skip 0.05", 0.12, 0.08, (0.03, 0.13)),
             _entry("cap 0.2", 0.2, 0.05, (0.02, 0.09)),
             _entry("cap 0.3", 0.3, 0.04, (0.01, 0.07)), _entry("top-model", 1.0, 0.0)]
    assert [e["name"] for e in safer(noisy, {"disagreement": 0.1})] == ["cap 0.2", "top-model"]


def test_policy_carries_a_novelty_summary_when_the_embedding_model_is_pulled(tuned):
    from tts.models.embed import embed_path
    from tts.models.registry import ModelError
    from tts.novelty import NoveltySummary

    notes, how = tuned["policy"].notes, tuned["report"]["novelty"]
    try:
        embed_path("embed")
    except ModelError:
        assert "novelty" not in notes and how.startswith("no novelty summary"), how
        return
    s = NoveltySummary.from_dict(notes["novelty"])
    assert s.questions == len(DATE) and 0 < s.expected < 0.2 and how.startswith("novelty")
    assert s.centroids.shape[0] == min(32, len(DATE) // 5)


def test_a_multi_budget_frontier_is_safer_at_every_step():
    out = run_tune(DATE, TWO, objective="accuracy", trials=3, folds=2, group_by="scenario",
                   budgets=(20000, 262144), seeds=(0,), heldout_seeds=(5,))
    expected = policy_expected(out["policy"])
    assert [b["budget"] for b in expected["by_budget"]] == [20000, 262144]
    dis = [e["disagreement"] for _, e in policy_frontier(out["policy"])]
    assert all(d < expected["disagreement"] for d in dis)
    for plan, e in policy_frontier(out["policy"]):
        assert [lv.from_budget for lv in plan.levels] == [0.0, 262144]
        assert len(e["by_budget"]) == 2


def _policy_dict(tuned):
    return json.loads(tuned["policy"].to_json())


@pytest.mark.parametrize("edit, field", [
    (lambda n: n["expected"].update(disagreement=1.5), "notes.expected.disagreement"),
    (lambda n: n["expected"].pop("disagreement_ci95"), "notes.expected"),
    (lambda n: n["expected"].update(disagreement_ci95=[0.3, 0.1]),
     "notes.expected.disagreement_ci95"),
    (lambda n: n["expected"].update(surprise=1), "surprise"),
    (lambda n: n.update(frontier=[]), "notes.frontier"),
    (lambda n: n["frontier"][-1].update(levels=[{"from_budget": 5, "rungs": []}]),
     "levels"),
    (lambda n: n["frontier"][-1]["levels"][0]["rungs"][0].update(role="medium"), "role"),
    (lambda n: n["frontier"][-1]["expected"].update(cost_share=-1), "cost_share"),
    (lambda n: n["frontier"].append(copy.deepcopy(n["frontier"][-1])) or
     n["frontier"][-1]["expected"].update(disagreement=0.9), "cheapest to safest"),
])
def test_load_refuses_a_malformed_expectation_or_frontier(tuned, tmp_path, edit, field):
    data = _policy_dict(tuned)
    edit(data["notes"])
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValidationError, match=f"policy file {path}") as err:
        load_policy(path)
    assert field in str(err.value) or field in (err.value.parameter or "")


def test_policies_without_expectations_read_as_before(tuned):
    data = _policy_dict(tuned)
    del data["notes"]["expected"], data["notes"]["frontier"]
    from tts.policy import policy_from_dict

    policy = policy_from_dict(data)
    assert policy_expected(policy) is None and policy_frontier(policy) == []
    assert np.isfinite(tuned["report"]["frontier"][-1]["cost_share"])


def test_frontier_plans_are_searched_for_agreement_in_studies_of_their_own():
    from tts.tuning.data import prepare_ladder
    from tts.tuning.frontier import agreeing
    from tts.tuning.search import search

    data = prepare_ladder(DATE, TWO, budget=262144, seeds=(0,))
    view = agreeing(data, agreement_arrays(DATE.with_ladder(TWO), "gpt-4"))
    assert view.fingerprint != data.fingerprint and view.prompt is data.prompt
    scored = {c.name: c.ev.accuracy for c in search(view, trials=3, max_cost_share=0.45)
              .candidates}
    assert scored["top-model"] == 1.0  # the top model agrees with itself everywhere
    assert {c.name: c.ev.accuracy for c in search(data, trials=3, max_cost_share=0.45)
            .candidates}["top-model"] < 1.0


def test_skipping_plans_send_the_hardest_rated_prompts_to_the_top_model():
    """A skipping plan (the deployed plan with every lower rung's `skip_above`) skips the
    share of training questions its prompt prior rates hardest, and its cost rises with it."""
    from tts.tuning.data import prepare_ladder
    from tts.tuning.frontier import skipping
    from tts.tuning.search import score_plan
    from tts.tuning.space import baselines

    data = prepare_ladder(DATE.with_ladder(TWO), tuple(TWO), budget=262144, seeds=(0,),
                          count_prompt=True)
    base = baselines(data)["cascade-small-pot"]
    costs = []
    for share in (0.0, 0.25, 0.5, 1.0):
        rungs = skipping(base, data, share)
        assert rungs[-1] == base[-1] and rungs[-1].skip_above == 1.0
        ev = score_plan(data, rungs, (0,))
        top_only = (ev.tokens["gpt-3.5-turbo"] == 0).mean()
        assert top_only == pytest.approx(share, abs=0.02)
        costs.append(ev.mean_cost)
    assert costs == sorted(costs)
    assert skipping(base[-1:], data, 0.5) is None
