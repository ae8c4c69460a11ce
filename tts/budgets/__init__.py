"""Budgets: the hard limit a caller grants, the ledger enforcing it, and token prices."""

from tts.budgets.budget import MAX_BUDGET, Budget, Ledger, Reservation, check_budget
from tts.budgets.cost import MOT_USD, PRESETS, QWEN_PARAMS, CostModel, ModelCost

__all__ = ["Budget", "Ledger", "Reservation", "check_budget", "MAX_BUDGET", "CostModel",
           "ModelCost", "MOT_USD", "QWEN_PARAMS", "PRESETS"]
