"""Final answers: pull them out of model text, decide when two are the same, count votes.

Majority voting and agreement-based escalation both rest on one question: do two samples give
the same answer? Answers arrive in many spellings ("1,000", "$1000.00", "\\boxed{1000}"), so
this package works in three tiers, cheapest first:

1. `canonical` maps an answer to a normalised key (numbers to an exact decimal string, choice
   letters upper-cased, dates zero-padded). Equal keys mean equivalent answers.
2. Two keys that are both plain numbers are compared with a relative tolerance of 1e-6.
3. Everything else that looks mathematical goes to math-verify (LaTeX parsed with sympy),
   with parses and verdicts cached, because it costs milliseconds per call.

Only math-verify's LaTeX parser is used: its plain-expression parser goes through
`sympy.parse_expr`, which evaluates Python, and model output must never be executed.

Modules, one job each: `extract` (answer out of model text), `equivalence` (canonical keys and
`equivalent`), `mathverify` (the math-verify child process), `votes` (tallies), `choice`
(multiple-choice prompts: their option letters and the chosen one). Everything
public is re-exported here, so `from tts.answers import ...` is the import to use.
"""

from __future__ import annotations

from tts.answers.choice import choice_letters, extract_choice
from tts.answers.equivalence import _keys_equivalent  # noqa: F401  (tts.evaluate.arrays)
from tts.answers.equivalence import canonical, equivalent, is_correct
from tts.answers.extract import extract_answer
from tts.answers.votes import (Votes, WeightedVotes, class_ids, count_votes,
                               count_weighted_votes, kept_count)  # noqa: F401  (tests)

__all__ = [
    "Votes",
    "WeightedVotes",
    "canonical",
    "choice_letters",
    "class_ids",
    "count_votes",
    "count_weighted_votes",
    "equivalent",
    "extract_answer",
    "extract_choice",
    "is_correct",
]
