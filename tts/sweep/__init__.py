"""Budget sweeps: run every fixed strategy, the policy and the oracle on a bank at each budget.

For each budget of a grid, every plan runs on every question of a bank under that budget,
over several seeded sample orders (replay, so the generations are real and the run is exact).
A plan that cannot pay for its cheapest step answers nothing ("insufficient_budget"): it
counts as wrong and costs 0. Accuracy gets a 95% bootstrap interval from resampling
(question, seed) pairs; spend is reported as mean and p95, in total and per model.

The per-question oracle picks, for each (question, seed), the cheapest evaluated plan that is
correct in hindsight at that budget (or the cheapest plan when none is): an upper bound on
any policy choosing among the evaluated plans.

Rows are appended to a checkpoint CSV one budget at a time, so an interrupted sweep resumes
where it stopped and, being seeded, ends with the same numbers as an uninterrupted one.

Modules, one job each: `runner` runs the sweep and its checkpoint (`run_sweep`); `evaluator` one
plan at one budget over every seed, and the oracle; `plans` which plans run (names to
strategies on a bank, the policy and its training split); `result` what the sweep measured
(`SweepResult`, derived measures); `rows` one `SweepRow` and its CSV (checkpoint) form;
`report` the markdown, the plot and the terminal tables, from plain data; `cli` `tts sweep`.

    >>> from tts.sweep import run_sweep
    >>> result = run_sweep(None, [512, 4096, 131072], seeds=2, progress=False)
    >>> result.row(4096, "vote@8").accuracy  # doctest: +SKIP
"""

from __future__ import annotations

from tts.sweep.cli import add_cli
from tts.sweep.report import markdown, plot, print_table
from tts.sweep.result import SweepResult
from tts.sweep.rows import SweepRow
from tts.sweep.runner import DEFAULT_BUDGETS, run_sweep

__all__ = ["run_sweep", "SweepResult", "SweepRow", "DEFAULT_BUDGETS", "add_cli", "markdown",
           "plot", "print_table"]
