"""bench/route_routellm.py: its outputs have the layout issue 24 asks for (summary keys, fold
schemes, shares in [0, 1], published rows, targets), on small synthetic scores."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
route_routellm = pytest.importorskip("route_routellm")


def test_outputs_hold_every_router_scheme_and_published_row(tmp_path) -> None:
    rng = np.random.default_rng(0)
    n = 400
    weak = rng.random(n) < 0.6
    strong = rng.random(n) < 0.8
    d = route_routellm.Data("toy_mmlu", [f"q{i}" for i in range(n)],
                            [f"mmlu_s{i % 5}" for i in range(n)],
                            np.stack([weak, strong], axis=1), ("weak", "strong"))
    gain = strong.astype(float) - weak
    folds = route_routellm.fold_indices(n, 5, seed=0)
    scores = {scheme: {"tts": gain + rng.normal(0, 0.5, n),
                       "subject_mean": route_routellm.subject_mean_scores(d, folds),
                       "tfidf": rng.random(n)}
              for scheme in ("by_question", "by_subject", "labels_1500")}
    rand = route_routellm.random_curve(weak, strong)
    learning = [{"router": "tts", "labels": 250, **route_routellm.curve(
        scores["by_question"]["tts"], d).summary()}]
    chosen = {"by_question": {"chosen": ["x"], "inner_apgr": {"x": 0.71, "y": 0.7}}}
    summary = route_routellm.summarise("mmlu", d, scores, rand, chosen, learning)
    summary["subjects"] = route_routellm.subject_spread(d, scores["by_subject"])
    summary["labels_1500_used"] = 1500
    route_routellm.write(tmp_path, "mmlu", d, scores, summary, learning)
    s = json.loads((tmp_path / "summary.json").read_text())
    for router in ("tts", "random", "subject_mean", "tfidf"):
        for scheme in ("by_question", "by_subject", "labels_1500"):
            m = s[router][scheme]
            assert set(m) == {"apgr", "cpt50", "cpt80"}
            assert all(v is None or 0 <= v <= 1.2 for v in m.values())
    assert s["tts"]["by_question"]["apgr"] > s["tfidf"]["by_question"]["apgr"]
    assert s["published"]["sw_ranking"] == {"cpt50": 0.354, "cpt80": 0.7155, "apgr": 0.603}
    md = (tmp_path / "routing.md").read_text()
    assert "## Targets" in md and "by_question apgr" in md
    assert "- by_question: x 0.710, y 0.700" in md  # what the nested choice saw
    sub = s["subjects"]
    assert sub["gain_min"] <= sub["gain_max"] and 0 <= sub["between_share_of_variance"] <= 1
    assert len(sub["by_subject_fold_apgr"]["tts"]) == 5 and "APGR per held-out fold" in md
    assert (tmp_path / "pgr.png").stat().st_size > 10_000
    rows = (tmp_path / "curves.csv").read_text().splitlines()
    assert rows[0] == "scheme,router,share_strong,accuracy,pgr" and len(rows) == 1 + 3 * 4 * 11
