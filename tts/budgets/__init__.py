"""Budgets: the hard limit a caller grants, the ledger enforcing it, and token prices."""

from tts.budgets.budget import MAX_BUDGET, Budget, Ledger, Reservation, check_budget
from tts.budgets.cost import (KNOWN_PARAMS, MOT_USD, PRESETS, QWEN_PARAMS, CostModel, ModelCost,
                              by_params, default_cost, params_from_name)

__all__ = ["Budget", "Ledger", "Reservation", "check_budget", "MAX_BUDGET", "CostModel",
           "ModelCost", "MOT_USD", "QWEN_PARAMS", "PRESETS", "KNOWN_PARAMS", "by_params",
           "default_cost", "params_from_name"]
