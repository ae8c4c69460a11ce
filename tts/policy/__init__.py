"""Policies: per prompt and budget, which ladder of rungs spends the budget best.

One format (`tts-policy/2`, `LadderPolicy`: a ladder of rungs per budget level; see
`tts.policy.ladder`), one loader (`load_policy`, which also converts every older format tts
wrote, `tts.policy.legacy`), the untuned `DefaultPolicy`, and `CrossFitPolicy` (k fold
policies in one, for held-out evaluation). `tts tune` (`tts.tuning`) writes them, with what
the deployed policy is expected to score and a frontier of safer plans in its notes
(`tts.policy.expected` documents the JSON; `policy_expected(policy)` and
`policy_frontier(policy) -> [(LadderPolicy, expected), ...]` read them, checked).
"""

from tts.policy.crossfit import CrossFitPolicy
from tts.policy.ladder import (DEFAULT_RUNGS, FORMAT, DefaultPolicy, LadderLevel, LadderPolicy,
                               Policy, level_at, prompt_priors, single_level)
from tts.policy.load import (crossfit_from_dict, load_policy, policy_expected, policy_frontier,
                             policy_from_dict)

__all__ = ["Policy", "DefaultPolicy", "LadderPolicy", "LadderLevel", "CrossFitPolicy",
           "load_policy", "policy_from_dict", "crossfit_from_dict", "single_level", "level_at",
           "prompt_priors", "DEFAULT_RUNGS", "FORMAT", "policy_expected", "policy_frontier"]
