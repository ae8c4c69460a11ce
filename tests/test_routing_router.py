"""The prompt router: fitting, JSON round trips, refusals, cross-fitting without leaks, and
RouteLLM's metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tts.errors import UnknownNameError
from tts.routing import (Candidate, Router, RouterError, cheapest_fails_auroc, cross_fit,
                         fold_indices, random_curve, routing_curve)
import tts.routing.router as router_module
from tts.routing.crossfit import choose_candidate
from tts.routing.router import DEFAULT_CANDIDATES, WORD_CANDIDATES, WORDS_FROM, default_candidates
from tts.routing.metrics import RoutingCurve

TIERS = ("weak-model", "strong-model")


def toy(n: int = 300, dim: int = 16, seed: int = 0):
    """Unit embeddings; the weak tier fails where the first coordinate is high, the strong
    tier is right on 85% of prompts at random."""
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(n, dim))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    weak = emb[:, 0] + 0.15 * rng.normal(size=n) < 0.1
    strong = rng.random(n) < 0.85
    texts = [f"Question {i}: how many {'apples' if i % 2 else 'pears'} are left?"
             for i in range(n)]
    return texts, emb, np.stack([weak, strong], axis=1)


@pytest.mark.parametrize("cand", [Candidate.logistic(1.0), Candidate.knn(15),
                                  Candidate.blend(1.0, 15)])
def test_router_learns_which_prompts_the_weak_tier_fails(cand) -> None:
    texts, emb, y = toy()
    router = Router.fit(texts[:200], y[:200], embeddings=emb[:200], tiers=TIERS,
                        embed_model="toy@1", candidate=cand)
    p = router.predict(texts[200:], embeddings=emb[200:])
    assert p.shape == (100, 2) and np.all((p >= 0) & (p <= 1))
    assert cheapest_fails_auroc(p[:, 0], y[200:, 0]) > 0.85


@pytest.mark.parametrize("cand", [Candidate.logistic(0.3), Candidate.knn(5),
                                  Candidate.blend(0.3, 5), Candidate(t=1.0),
                                  Candidate(f=0.2), Candidate(c=0.3, k=5, t=1.0, f=0.2)])
def test_json_round_trip_predicts_the_same(cand, tmp_path) -> None:
    texts, emb, y = toy(80)
    router = Router.fit(texts, y, embeddings=emb, tiers=TIERS, embed_model="toy@1",
                        candidate=cand)
    path = tmp_path / "router.json"
    router.to_json(path)
    data = json.loads(path.read_text())  # plain JSON, no pickle
    assert data["format"] == "tts-router/2" and data["tiers"] == list(TIERS)
    assert bool(data["terms"]) == (cand.t is not None)  # the TF-IDF vocabulary, as strings
    again = Router.from_json(path, ladder=list(TIERS), embed_model="toy@1")
    assert np.array_equal(again.predict(texts, embeddings=emb),
                          router.predict(texts, embeddings=emb))
    assert again.candidate == cand and again.fitted_on == 80


def test_refuses_other_ladders_tiers_and_embeddings() -> None:
    texts, emb, y = toy(60)
    router = Router.fit(texts, y, embeddings=emb, tiers=TIERS, embed_model="toy@1")
    text = router.to_json()
    with pytest.raises(RouterError, match=r"fitted for models \['weak-model', 'strong-model'\]"
                                          r".*\['weak-model', 'gpt-4'\]"):
        Router.from_json(text, ladder=["weak-model", "gpt-4"])
    with pytest.raises(UnknownNameError, match="not fitted for tier 'gpt-4'"):
        router.p_correct(texts[:2], "gpt-4", embeddings=emb[:2])
    with pytest.raises(RouterError, match="fitted on embeddings of toy@1, not other@2"):
        Router.from_json(text, embed_model="other@2")
    with pytest.raises(RouterError, match="16-dimensional embeddings of toy@1, got 8"):
        router.predict(texts[:2], embeddings=emb[:2, :8])
    with pytest.raises(RouterError, match="embeddings or an encoder"):
        router.predict(texts[:2])


@pytest.mark.parametrize("mutate, match", [
    (lambda d: d.update(format="x"), "not a router file"),
    (lambda d: d.pop("arrays"), r"lacks \['arrays'\]"),
    (lambda d: d.update(c=None, k=None), "needs a part: logistic"),
    (lambda d: d.update(t=0), "tfidf C must be a positive number"),
    (lambda d: d.update(f=float("nan")), "features C must be a positive number"),
    (lambda d: d.update(t=1.0), r"do not fit a logistic\(C=0.3\)\+knn\(k=50\)\+tfidf"),
    (lambda d: d.update(terms="abc"), "`terms` must be a list"),
    (lambda d: d.update(c=None), r"do not fit a knn\(k=50\) router"),
    (lambda d: d.update(c=-1), "positive number"),
    (lambda d: d.update(k=1.5), "positive integer"),
    (lambda d: d["arrays"]["coef"].update(shape=[3, 5]), "needs 60 bytes"),
    (lambda d: d["arrays"].pop("mean"), r"do not fit a logistic\(C=0.3\)\+knn\(k=50\) router"),
    (lambda d: d["prior"].update(float32="!!"), "malformed"),
])
def test_malformed_router_files_are_refused(mutate, match) -> None:
    texts, emb, y = toy(40, dim=4)
    data = json.loads(Router.fit(texts, y, embeddings=emb, tiers=TIERS,
                                 embed_model="toy@1").to_json())
    mutate(data)
    with pytest.raises(RouterError, match=match):
        Router.from_json(json.dumps(data))


def test_a_tfidf_router_file_is_checked_against_its_vocabulary() -> None:
    texts, emb, y = toy(60, dim=4)
    data = json.loads(Router.fit(texts, y, embeddings=emb, tiers=TIERS, embed_model="toy@1",
                                 candidate=Candidate(t=1.0, f=0.2)).to_json())
    assert data["terms"] and "arrays" in data and "points" not in data["arrays"]
    for mutate in (lambda d: d["terms"].pop(), lambda d: d["terms"].append(d["terms"][0]),
                   lambda d: d["arrays"].pop("fcoef")):
        bad = json.loads(json.dumps(data))
        mutate(bad)
        with pytest.raises(RouterError, match=r"do not fit a tfidf\(C=1\)\+features"):
            Router.from_dict(bad)
    many = dict(data, terms=[f"w{i}" for i in range(20_001)])
    with pytest.raises(RouterError, match="at most 20,000 strings"):
        Router.from_dict(many)


def test_a_router_without_embedding_parts_predicts_from_text_alone() -> None:
    texts = [f"Compute {i} plus {i + 1} and then the {'integral' if i % 2 else 'sum'}."
             for i in range(120)]
    hard = np.array(["integral" in t for t in texts])
    y = np.stack([~hard, np.ones(len(texts), bool)], axis=1)
    router = Router.fit(texts, y, embeddings=np.zeros((len(texts), 3)), tiers=TIERS,
                        embed_model="toy@1", candidate=Candidate(t=1.0))
    p = router.predict(["Compute 7 plus 8 and then the integral.",
                        "Compute 7 plus 8 and then the sum."])
    assert router.dim is None and p[0, 0] < 0.4 < 0.6 < p[1, 0]


def test_version_1_router_files_still_read() -> None:
    texts, emb, y = toy(40, dim=4)
    router = Router.fit(texts, y, embeddings=emb, tiers=TIERS, embed_model="toy@1")
    old = {k: v for k, v in router.to_dict().items() if k not in ("t", "f", "terms")}
    old["format"] = "tts-router/1"
    again = Router.from_dict(old)
    assert np.array_equal(again.predict(texts, embeddings=emb),
                          router.predict(texts, embeddings=emb))


def test_from_json_reports_unreadable_files(tmp_path) -> None:
    with pytest.raises(RouterError, match="router file .*missing.json does not exist"):
        Router.from_json(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(RouterError, match="bad.json:1: not valid JSON"):
        Router.from_json(tmp_path / "bad.json")
    with pytest.raises(RouterError, match="not valid JSON"):
        Router.from_json("{oops")
    with pytest.raises(RouterError, match="/dev/zero is a device, not a regular file"):
        Router.from_json("/dev/zero")  # refused at once, never read forever


def test_from_json_refuses_an_oversized_file(tmp_path, monkeypatch) -> None:
    texts, emb, y = toy(40, dim=4)
    path = tmp_path / "router.json"
    Router.fit(texts, y, embeddings=emb, tiers=TIERS, embed_model="toy@1").to_json(path)
    monkeypatch.setattr(router_module, "MAX_ROUTER_BYTES", path.stat().st_size - 1)
    with pytest.raises(RouterError, match=f"router file {path} is larger than"):
        Router.from_json(path)
    monkeypatch.setattr(router_module, "MAX_ROUTER_BYTES", path.stat().st_size)
    assert Router.from_json(path).fitted_on == 40


def test_cross_fitting_never_scores_a_prompt_with_a_fit_that_saw_it() -> None:
    # Random labels: a 1-nearest-neighbour router that saw a prompt recalls its label exactly
    # (AUROC 1); held-out it can only guess.
    rng = np.random.default_rng(3)
    texts, emb, _ = toy(200)
    y = rng.random((200, 2)) < 0.5
    seen = Router.fit(texts, y, embeddings=emb, tiers=TIERS, embed_model="toy@1",
                      candidate=Candidate.knn(1)).predict(texts, embeddings=emb)
    assert cheapest_fails_auroc(seen[:, 0], y[:, 0]) == 1.0
    fit = cross_fit(texts, y, emb, tiers=TIERS, embed_model="toy@1",
                    candidates=[Candidate.knn(1)], folds=5)
    assert abs(cheapest_fails_auroc(fit.predictions[:, 0], y[:, 0]) - 0.5) < 0.15
    assert sorted(np.concatenate(fit.folds).tolist()) == list(range(200))


def test_nested_choice_uses_the_selection_score() -> None:
    texts, emb, y = toy(150)
    cands = [Candidate.knn(1), Candidate.logistic(1.0)]
    best, scores = choose_candidate(texts, y, emb, tiers=TIERS, embed_model="toy@1",
                                    candidates=cands)
    assert best == cands[1] and scores["logistic(C=1)"] > scores["knn(k=1)"]
    worst, flipped = choose_candidate(texts, y, emb, tiers=TIERS, embed_model="toy@1",
                                      candidates=cands, select=lambda p, lab: float(
                                          np.mean((p - lab) ** 2)))
    assert worst == cands[0] and flipped["knn(k=1)"] == pytest.approx(-scores["knn(k=1)"])
    fit = cross_fit(texts, y, emb, tiers=TIERS, embed_model="toy@1", candidates=cands,
                    folds=3)
    assert fit.chosen == ("logistic(C=1)",) * 3
    blend = Candidate.blend(1.0, 1)
    assert blend.parts == tuple(reversed(cands)) and blend.name == "logistic(C=1)+knn(k=1)"
    _, with_blend = choose_candidate(texts, y, emb, tiers=TIERS, embed_model="toy@1",
                                     candidates=[*cands, blend])
    assert min(with_blend.values()) < with_blend[blend.name] < max(with_blend.values())


def test_word_parts_join_the_grid_only_on_large_fitting_sets() -> None:
    small, large = default_candidates(WORDS_FROM - 1), default_candidates(WORDS_FROM)
    assert small == DEFAULT_CANDIDATES and all(c.t is None for c in small)
    assert large[len(small):] == WORD_CANDIDATES and any(c.t is not None for c in large)
    assert Candidate(f=0.2) in small  # the prompt-feature prior's model, a fallback
    texts, emb, y = toy(60, dim=4)
    _, scores = choose_candidate(texts, y, emb, tiers=TIERS, embed_model="toy@1")
    assert list(scores) == [c.name for c in DEFAULT_CANDIDATES]


def test_group_folds_keep_each_group_in_one_fold() -> None:
    groups = [f"subject{i % 7}" for i in range(70)] + ["big"] * 30
    folds = fold_indices(100, 4, groups=groups)
    assert sorted(np.concatenate(folds).tolist()) == list(range(100))
    owner = {}
    for f, held in enumerate(folds):
        for i in held:
            assert owner.setdefault(groups[i], f) == f
    with pytest.raises(ValueError, match="8 groups cannot make 9 folds"):
        fold_indices(100, 9, groups=groups)


# ---- metrics ----------------------------------------------------------------------------------
def test_routing_curve_matches_a_hand_computation() -> None:
    # 4 prompts; the strong model is needed on prompts 2 and 3, which score highest.
    weak = np.array([True, True, False, False])
    strong = np.array([True, True, True, True])
    c = routing_curve(np.array([0.1, 0.2, 0.8, 0.9]), weak, strong, thresholds=4)
    assert c.weak == 0.5 and c.strong == 1.0
    assert c.share.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert c.pgr.tolist() == [0.0, 0.5, 1.0, 1.0, 1.0]
    assert c.apgr == pytest.approx(0.0625 + 0.1875 + 0.25 + 0.25)
    assert c.cpt(0.5) == pytest.approx(0.25) and c.cpt(0.8) == pytest.approx(0.4)
    reverse = routing_curve(np.array([0.9, 0.8, 0.2, 0.1]), weak, strong, thresholds=4)
    assert reverse.apgr < 0.5 < c.apgr


def test_cpt_interpolates_and_is_nan_when_never_reached() -> None:
    c = RoutingCurve(np.array([0.0, 0.5, 1.0]), np.array([0.6, 0.7, 0.8]), 0.6, 0.8)
    assert c.cpt(0.25) == pytest.approx(0.25)
    flat = RoutingCurve(np.array([0.0, 1.0]), np.array([0.6, 0.7]), 0.6, 0.8)
    assert np.isnan(flat.cpt(0.8))


def test_random_router_recovers_half_the_gap() -> None:
    rng = np.random.default_rng(0)
    weak, strong = rng.random(4000) < 0.6, rng.random(4000) < 0.8
    r = random_curve(weak, strong)
    assert r["apgr"] == pytest.approx(0.5, abs=0.05)
    assert r["cpt50"] == pytest.approx(0.5, abs=0.08)


@pytest.mark.parametrize("scores, weak, strong, match", [
    ([0.1, np.nan], [True, False], [True, True], "finite"),
    ([0.1], [True, False], [True, True], "one length"),
    ([0.1, 0.2], [True, False], [True, False], "differ"),
])
def test_routing_curve_rejects_bad_input(scores, weak, strong, match) -> None:
    with pytest.raises(ValueError, match=match):
        routing_curve(np.array(scores), np.array(weak), np.array(strong))
