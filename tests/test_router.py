"""The random router: it routes by question id and seed only, so the engine and the
evaluator agree; its routed share follows `share`; the strong side counts as escalated."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tts.errors import ValidationError
from tts.evaluate import evaluate
from tts.strategies import Ladder, RandomRouter, Rung, Vote
from tts.strategies.router import routed

from .test_ladder import assert_same_as_evaluator
from .test_mixed import ARRAYS, DATE, GREEDY_TOP, MODELS, engine_results

WEAK = Ladder(rungs=(Rung(role="small", mode="pot", max_samples=6, wave=3),))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.floats(0, 1), st.integers(0, 50), st.sampled_from([5_000, 140_000, 1e6]),
       st.booleans(), st.integers(0, 3))
def test_router_engine_equals_evaluator(share, router_seed, budget, count_prompt, seed):
    router = RandomRouter(share=share, weak=WEAK, strong=Ladder(rungs=(GREEDY_TOP,)),
                          seed=router_seed)
    ev = evaluate(ARRAYS, router, budget, [seed], count_prompt=count_prompt)
    results = engine_results(router, budget, count_prompt, seed)
    assert_same_as_evaluator(results, ev, ARRAYS, budget, MODELS)
    strong = [routed(p, share, router_seed) for p in ARRAYS.problem_ids]
    if budget == 1e6:  # both plans affordable: escalated means routed to the top model
        assert list(ev.escalated[0]) == strong


def test_routed_share_follows_share_and_seed():
    ids = DATE.problem_ids
    for share in (0.0, 0.2, 0.5, 1.0):
        got = np.mean([[routed(p, share, s) for p in ids] for s in range(20)])
        assert abs(got - share) < 0.03
    assert [routed(p, 0.5, 1) for p in ids] != [routed(p, 0.5, 2) for p in ids]


@pytest.mark.parametrize("options, match", [
    (dict(share=1.5), "share"), (dict(seed=-1), "seed"), (dict(weak=None), "weak")])
def test_bad_routers_are_clear_errors(options, match):
    kw = {**dict(share=0.5, weak=Vote(), strong=Ladder(rungs=(GREEDY_TOP,))), **options}
    with pytest.raises(ValidationError, match=match):
        RandomRouter(**kw)
