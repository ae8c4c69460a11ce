"""Route before generating: read the prompt, predict each tier's chance of answering right.

A `Router` maps a prompt's sentence embedding (a real model on the CPU: all-MiniLM-L6-v2,
`tts models pull embed`, or any sentence-transformers folder), tts's cheap prompt features and
its words (TF-IDF) to P(tier answers right) for every tier of the ladder it was fitted on. It
is fitted with cross-fitting (`cross_fit`: every prompt scored by a router that never saw it;
kNN, logistic, TF-IDF, feature-only models or their blends chosen on inner folds,
`default_candidates`) and stored as JSON. `tts.routing.metrics` computes RouteLLM's routing
metrics (PGR, APGR, CPT) and the AUROC for "the cheapest tier fails".

Modules, one job each: `embeddings` (encoder, per-bank cache), `features` (the router's
prompt features), `text` (its TF-IDF vocabulary), `router` (fit, predict, JSON), `crossfit` (folds, nested choice, out-of-fold
predictions), `metrics` (routing curves, AUROC), `banks` (a bank as training data; cross-fitted
predictions and AUROC for a bank).
"""

from __future__ import annotations

from tts.routing.banks import BankRouting, BankTable, bank_table, route_bank, tier_mode
from tts.routing.crossfit import CrossFit, brier_skill, choose_candidate, cross_fit, fold_indices
from tts.routing.embeddings import (EmbeddingCache, Encoder, default_cache_dir, embed_texts,
                                    load_encoder, text_key)
from tts.routing.metrics import RoutingCurve, cheapest_fails_auroc, random_curve, routing_curve
from tts.routing.router import (DEFAULT_CANDIDATES, WORD_CANDIDATES, Candidate, Router,
                                RouterError, default_candidates)

__all__ = ["Router", "RouterError", "Candidate", "DEFAULT_CANDIDATES", "WORD_CANDIDATES",
           "default_candidates", "CrossFit", "cross_fit",
           "choose_candidate", "fold_indices", "brier_skill", "Encoder", "EmbeddingCache",
           "load_encoder", "embed_texts", "default_cache_dir", "text_key", "RoutingCurve",
           "routing_curve", "random_curve", "cheapest_fails_auroc", "BankTable", "bank_table",
           "BankRouting", "route_bank", "tier_mode"]
