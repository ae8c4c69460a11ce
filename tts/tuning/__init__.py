"""The one tuner: tune a ladder policy with Optuna, choose among its trials without the
winner's curse, and report it on questions (or whole scenarios) it never saw.

    tts tune --ladder gpt-3.5-turbo,gpt-4 --objective cost --folds 5 --group-by scenario
    tts tune --budgets 512,2048,131072 --objective accuracy      # one level per budget

One tuning run on a set of training questions (`tune_ladder`):

1. Fit a climb score per (tier, representation, check) on the training questions: a logistic
   model of "this rung's leader is wrong" over `tts.signals.CLIMB_FEATURES` (leader_conf, the
   leader's mean min_conf, only where the bank has confidences for that tier and
   representation on every training question; elsewhere its weight is 0).
2. An Optuna study searches one `LadderLevel` (`suggest_rungs`) for the most accurate plan
   within a cost cap (a share of the top model's cost; none for the plain accuracy
   objective): per lower rung whether to use it, its representation, waves, sample cap,
   early stop, the mixture-of-thought check, DeepConf's confidence weighting and filter (where
   the bank has confidences), where the tier has two sampled representations whether its
   vote mixes them (MoT's vote, `Rung.mix_mode`, and its split climb, `climb_split`), the
   score and its threshold, and an agreement
   floor in [0.5, 1] below which it always climbs (so no tuned policy can stop climbing on
   questions whose own vote is split); the top rung's greedy answer or vote.
3. Candidates: the best trials re-scored with twice the seeds, plus fixed plans (the top
   model alone; the default cascade from every lower tier in every representation).
4. Selection (`select_candidate`): the most accurate candidate within the cap, kept over the
   best fixed plan within the cap only if it wins by more than m standard errors of the
   paired per-question difference.
5. The cap and m (cost objective) or m (accuracy objective) are not constants: an inner
   cross-validation on the training questions (`choose_rule`) runs steps 1-4 on each inner
   training split for every cap of `CAPS` and margin of `MARGINS` and scores the selected
   plan on the inner held-out questions. The cost objective takes the cheapest rule whose pooled
   inner held-out accuracy, less `INNER_SE` standard errors of its paired difference with
   the top model, reaches the top model's pooled inner held-out accuracy (the target,
   unless given), or, when none does, the cap with the best inner held-out accuracy (the
   top model alone is one of its candidates, so this falls back on it where nothing beats
   it); the accuracy objective the
   margin with the best pooled inner held-out accuracy. Picking the best of many plans on
   the questions that scored them is optimistic (the winner's curse; Varma & Simon 2006,
   Tibshirani & Tibshirani 2009); tuning the selection rule itself on held-out questions
   removes that optimism from the choice, and the outer folds of `run_ladder_tune` measure
   the whole procedure, rule choice included (nested cross-validation). Where the small
   tiers cannot match the top model out of sample (MoT GSM8K) the rule falls back on it;
   where they can (MoT DATE) it keeps the savings.

Rungs may also be given as `model:mode` (`parse_ladder`): each entry is then one rung of that
model in that mode, so one model may appear several times (a vote, then a chain of the small
model, then the large one): "qwen-0.5b:sample,qwen-0.5b:chain-1024,qwen-1.5b:greedy". A rung
in a chain mode ("chain-<L>") votes 1..n of the bank's chains and has no check; a lower rung
in a greedy mode ("qwen-0.5b:greedy") is that model's one greedy answer, climbing by its rule
(the plainest cascade: answer cheaply, escalate the doubtful); an entry
without a mode keeps the plain meaning (the search picks the model's representation). Plain
model names are today's ladders, unchanged.

`run_tune` (the entry point; one level per budget) reports the k-fold held-out numbers (folds
by question or by scenario, a question's first sentence, so whole scenarios are held out),
returns the deployable policy tuned by the same procedure on every question, and states what
that deployed plan is expected to score (cross-fitted) beside the procedure's estimate.

For deployment, every held-out number comes with the disagreement with the top model's
greedy answer (what audits measure) and the worst group of questions beside the mean; the
policy's notes say what the deployed plan is expected to score and list a frontier of safer
plans, cheapest to safest (`tts.policy.expected` documents the JSON). `reference="top"`
(`tts tune --reference top`) tunes for agreement with the top model where there is no gold.

Where things are: `folds` (outer and inner folds, groups), `data` (the training questions,
the ladder, fitted scores), `space` (what a trial suggests, the fixed plans), `search` (one
study and the selection), `nested` (the selection rule chosen on inner folds; one tuning run),
`reference` (gold or agreement with the top model), `heldout` (cross-fitted scores, worst
group), `frontier` (safer plans), `report` (`run_tune`), `studies` (Optuna storage), `cli`
(`tts tune`), `render` (its table).
"""

from tts.tuning.report import run_tune

__all__ = ["run_tune"]
