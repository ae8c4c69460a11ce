"""A prompt router: per prompt and per tier (model), the chance that the tier answers right,
read from the prompt before anything is generated.

Four kinds of model (parts), and blends of them, stored as plain numbers:

* logistic (`c`): one L2 logistic regression per tier (scikit-learn) on the sentence embedding
  plus standardised prompt features (`tts.routing.features`).
* knn (`k`): the share of the k most similar fitted prompts (cosine of embeddings) that the
  tier answered right, shrunk toward the tier's mean accuracy.
* tfidf (`t`): logistic regression on TF-IDF of the prompt's words and word pairs
  (`tts.routing.text`): the terms an embedding blurs.
* features (`f`): logistic regression on the prompt features alone: few weights, for banks of
  a few hundred prompts where 384 embedding weights overfit.

A candidate with several parts averages their probabilities (the logistic part reads the whole
space, the kNN part the prompt's neighbourhood, the TF-IDF part its words).

`Router.to_json` / `Router.from_json` write and read the fitted numbers as JSON (arrays as
base64 float32, the TF-IDF vocabulary as a list of terms; no pickle). A router knows the tiers
and the embedding model it was fitted for and refuses anything else: another ladder, a tier it
never saw, embeddings of another model.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from tts.errors import UnknownNameError, ValidationError
from tts.files import MAX_FILE_BYTES, read_json_file
from tts.routing.embeddings import Encoder
from tts.routing.features import design, prompt_matrix, standardiser
from tts.routing.text import MAX_TERMS, Vocabulary

__all__ = ["Candidate", "Router", "RouterError", "FORMAT", "DEFAULT_CANDIDATES", "WORD_CANDIDATES",
           "default_candidates"]

FORMAT = "tts-router/2"
READS = ("tts-router/1", FORMAT)
"""Formats read: /1 files (logistic and kNN parts only) read as they were written."""
MAX_ROUTER_BYTES = MAX_FILE_BYTES
"""Largest router file read (a kNN router stores its fitted embeddings: ~2 KiB a prompt)."""
SHRINK = 2.0
"""kNN: pseudo-neighbours at the tier's mean accuracy added to the k real ones."""
_PART_NAMES = {"c": "logistic(C={:g})", "k": "knn(k={})", "t": "tfidf(C={:g})",
               "f": "features(C={:g})"}
_PART_ARRAYS = {"c": ("coef", "intercept"), "k": ("points", "labels"),
                "t": ("idf", "tcoef", "tintercept"), "f": ("fcoef", "fintercept")}


class RouterError(ValidationError):
    """A router file is malformed, or used for tiers or embeddings it was not fitted for."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """A model family and its hyperparameters, or a blend of several (their probabilities
    averaged): each field set is one part."""

    c: float | None = None
    """Inverse L2 strength of the logistic part on embeddings + prompt features."""
    k: int | None = None
    """Neighbours of the kNN part."""
    t: float | None = None
    """Inverse L2 strength of the TF-IDF logistic part."""
    f: float | None = None
    """Inverse L2 strength of the prompt-features-only logistic part."""

    def __post_init__(self) -> None:
        if all(getattr(self, p) is None for p in _PART_NAMES):
            raise RouterError("a router candidate needs a part: logistic (c), knn (k), tfidf "
                              "(t) or features (f).", parameter="candidate")
        for p in ("c", "t", "f"):
            v = getattr(self, p)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                                  or not math.isfinite(v) or v <= 0):
                raise RouterError(f"{_PART_NAMES[p].split('(')[0]} C must be a positive "
                                  f"number, got {v!r}.", parameter=p, value=v)
        if self.k is not None and (isinstance(self.k, bool) or not isinstance(self.k, int)
                                   or self.k < 1):
            raise RouterError(f"knn k must be a positive integer, got {self.k!r}.",
                              parameter="k", value=self.k)

    @classmethod
    def logistic(cls, c: float) -> Candidate:
        return cls(c=c)

    @classmethod
    def knn(cls, k: int) -> Candidate:
        return cls(k=k)

    @classmethod
    def blend(cls, c: float, k: int) -> Candidate:
        return cls(c=c, k=k)

    @property
    def parts(self) -> tuple[Candidate, ...]:
        """The single-family candidates it averages (itself when it is one)."""
        return tuple(Candidate(**{p: getattr(self, p)}) for p in _PART_NAMES
                     if getattr(self, p) is not None)

    @property
    def name(self) -> str:
        return "+".join(_PART_NAMES[p].format(getattr(self, p)) for p in _PART_NAMES
                        if getattr(self, p) is not None)

    @property
    def reads_embeddings(self) -> bool:
        return self.c is not None or self.k is not None


DEFAULT_CANDIDATES: tuple[Candidate, ...] = (
    Candidate.logistic(0.3), Candidate.knn(50), Candidate.knn(150), Candidate.blend(0.3, 50),
    Candidate.blend(0.3, 150), Candidate(f=0.2))
"""What nested cross-fitting chooses among on any number of prompts. features(C=0.2) is the
prompt-feature prior's own model (`PromptDifficulty`, L2 5), the fallback for a bank too small
for 384 embedding weights."""
WORD_CANDIDATES: tuple[Candidate, ...] = (
    Candidate(c=0.1, k=50), Candidate(c=0.3, k=50, t=1.0), Candidate(c=0.1, k=50, t=1.0))
"""Added from `WORDS_FROM` fitting prompts on: the TF-IDF part's 20,000 weights per tier
need thousands of labelled prompts (on MMLU it only passes embeddings from 3,000 on)."""
WORDS_FROM = 2000


def default_candidates(prompts: int) -> tuple[Candidate, ...]:
    """The nested choice's grid for a fitting set of `prompts` prompts."""
    return DEFAULT_CANDIDATES + (WORD_CANDIDATES if prompts >= WORDS_FROM else ())


@dataclass(frozen=True, eq=False)
class Router:
    """Fitted per-tier P(correct) from prompt embeddings, prompt features and words."""

    tiers: tuple[str, ...]
    """The models it predicts for, cheapest first (the ladder it was fitted on)."""
    embed_model: str
    """`Encoder.model_id` of the embeddings it was fitted on."""
    candidate: Candidate
    prior: np.ndarray
    """(T,) each tier's accuracy on the fitting set."""
    arrays: Mapping[str, np.ndarray] = field(default_factory=dict)
    """mean, scale (F,) of the prompt features (logistic or features part); logistic: coef
    (T, D+F), intercept (T,); knn: points (N, D), labels (N, T); tfidf: idf (V,), tcoef (T, V),
    tintercept (T,); features: fcoef (T, F), fintercept (T,)."""
    fitted_on: int = 0
    """Prompts in the fitting set."""
    terms: tuple[str, ...] = ()
    """The TF-IDF part's vocabulary (term i has idf[i])."""

    def __post_init__(self) -> None:
        vocab = Vocabulary(self.terms, self.arrays["idf"]) if "idf" in self.arrays else None
        object.__setattr__(self, "_vocabulary", vocab)

    # ---- fitting ---------------------------------------------------------------------------
    @classmethod
    def fit(cls, texts: Sequence[str], labels: np.ndarray, *, embeddings: np.ndarray,
            tiers: Sequence[str], embed_model: str,
            candidate: Candidate = Candidate.blend(0.3, 50)) -> Router:
        """Fit on prompts, their embeddings (n, D) and labels (n, T): whether each tier
        answered each prompt right."""
        emb, y = _check_inputs(texts, embeddings, labels, len(tiers))
        if len(set(tiers)) != len(tiers) or not all(isinstance(t, str) and t for t in tiers):
            raise RouterError(f"tiers must be distinct model names, got {list(tiers)}.",
                              parameter="tiers")
        arrays: dict[str, np.ndarray] = {}
        terms: tuple[str, ...] = ()
        if candidate.c is not None or candidate.f is not None:
            feats = prompt_matrix(texts)
            mean, scale = standardiser(feats)
            arrays.update(mean=mean, scale=scale)
            feats = (feats - mean) / scale
            if candidate.c is not None:
                arrays.update(zip(_PART_ARRAYS["c"], _fit_logistic(
                    design(emb, feats), y, candidate.c)))
            if candidate.f is not None:
                arrays.update(zip(_PART_ARRAYS["f"], _fit_logistic(feats, y, candidate.f)))
        if candidate.k is not None:
            arrays.update(points=emb, labels=y)
        if candidate.t is not None:
            vocab = Vocabulary.fit(texts)
            terms = vocab.terms
            arrays.update(zip(_PART_ARRAYS["t"], (vocab.idf, *_fit_logistic(
                vocab.transform(texts), y, candidate.t))))
        # Stored as float32 in memory as in files, so a reloaded router predicts the same.
        return cls(tuple(tiers), embed_model, candidate, y.mean(0).astype(np.float32),
                   {k: np.asarray(v, np.float32) for k, v in arrays.items()}, len(y), terms)

    # ---- prediction ------------------------------------------------------------------------
    def predict(self, texts: Sequence[str], *, embeddings: np.ndarray | None = None,
                encoder: Encoder | None = None) -> np.ndarray:
        """(n, T) P(tier answers right) per prompt, tiers in `self.tiers` order. Pass the
        prompts' embeddings (from the router's embedding model) or an encoder to make them
        (a router of TF-IDF and features parts only reads neither)."""
        cand, a = self.candidate, self.arrays
        if isinstance(texts, str):
            raise RouterError("prompts must be a list of strings, got one string.",
                              parameter="prompts")
        emb = self._embeddings(texts, embeddings, encoder) if cand.reads_embeddings else None
        feats = None
        if cand.c is not None or cand.f is not None:
            feats = (prompt_matrix(texts) - a["mean"]) / a["scale"]
        parts = []
        if cand.c is not None:
            parts.append(_sigmoid(design(emb, feats) @ a["coef"].T + a["intercept"]))
        if cand.k is not None:
            parts.append(self._knn(emb))
        if cand.t is not None:
            x = self._vocabulary.transform(texts)  # type: ignore[attr-defined]
            parts.append(_sigmoid(np.asarray(x @ a["tcoef"].T) + a["tintercept"]))
        if cand.f is not None:
            parts.append(_sigmoid(feats @ a["fcoef"].T + a["fintercept"]))
        return sum(parts) / len(parts)

    def _embeddings(self, texts: Sequence[str], embeddings: np.ndarray | None,
                    encoder: Encoder | None) -> np.ndarray:
        if embeddings is None:
            if encoder is None:
                raise RouterError("predict needs the prompts' embeddings or an encoder.",
                                  parameter="embeddings")
            self.check_encoder(encoder)
            embeddings = encoder.encode(texts)
        emb = np.asarray(embeddings, float)
        if emb.ndim != 2 or len(emb) != len(texts):
            raise RouterError(f"embeddings must be (n, D) with n = {len(texts)} prompts, got "
                              f"{emb.shape}.", parameter="embeddings")
        if emb.shape[1] != self.dim:
            raise RouterError(f"router was fitted on {self.dim}-dimensional embeddings of "
                              f"{self.embed_model}, got {emb.shape[1]} dimensions.",
                              parameter="embeddings")
        return emb

    def _knn(self, emb: np.ndarray) -> np.ndarray:
        points, labels = self.arrays["points"], self.arrays["labels"]
        k = min(int(self.candidate.k or 1), len(points))
        sims = emb.astype(np.float32) @ points.T  # unit vectors: cosine similarity
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        hits = labels[top].sum(1)
        return (hits + SHRINK * self.prior) / (k + SHRINK)

    def p_correct(self, texts: Sequence[str], tier: str, **kw: Any) -> np.ndarray:
        """(n,) P(`tier` answers right)."""
        return self.predict(texts, **kw)[:, self.tier_index(tier)]

    # ---- what it was fitted for ------------------------------------------------------------
    @property
    def dim(self) -> int | None:
        """Embedding dimensions it reads (None: it reads no embeddings)."""
        a = self.arrays
        if "points" in a:
            return int(a["points"].shape[1])
        return int(a["coef"].shape[1] - a["mean"].shape[0]) if "coef" in a else None

    def tier_index(self, tier: str) -> int:
        try:
            return self.tiers.index(tier)
        except ValueError:
            raise UnknownNameError(f"the router was not fitted for tier {tier!r}; it predicts "
                                   f"{list(self.tiers)}.") from None

    def check_ladder(self, ladder: Sequence[str]) -> None:
        """Refuse a ladder holding a model the router was not fitted for."""
        unknown = [m for m in ladder if m not in self.tiers]
        if unknown:
            raise RouterError(f"router was fitted for models {list(self.tiers)}; this ladder "
                              f"has {list(ladder)} ({unknown} unknown to it). Fit a router on "
                              f"a bank of these models.", parameter="ladder")

    def check_encoder(self, encoder: Encoder) -> None:
        if encoder.model_id != self.embed_model:
            raise RouterError(f"router was fitted on embeddings of {self.embed_model}, got an "
                              f"encoder of {encoder.model_id}.", parameter="encoder")

    # ---- JSON ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "tiers": list(self.tiers), "embed_model": self.embed_model,
                **{p.name: getattr(self.candidate, p.name) for p in fields(Candidate)},
                "prior": _enc(self.prior), "fitted_on": self.fitted_on,
                "arrays": {k: _enc(v) for k, v in self.arrays.items()},
                "terms": list(self.terms)}

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict())
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, ladder: Sequence[str] | None = None,
                  embed_model: str | None = None) -> Router:
        """Read a router; with `ladder` / `embed_model`, refuse one fitted for others."""
        if not isinstance(data, Mapping) or data.get("format") not in READS:
            raise RouterError(f"not a router file: expected \"format\": \"{FORMAT}\".",
                              parameter="router")
        need = {"tiers", "embed_model", "c", "k", "prior", "arrays"}
        if need - set(data):
            raise RouterError(f"router file lacks {sorted(need - set(data))}.",
                              parameter="router")
        terms = data.get("terms", [])
        if not isinstance(terms, list) or len(terms) > MAX_TERMS \
                or not all(isinstance(t, str) for t in terms):
            raise RouterError(f"router file `terms` must be a list of at most {MAX_TERMS:,} "
                              f"strings.", parameter="router")
        try:
            arrays = {str(k): _dec(v) for k, v in dict(data["arrays"]).items()}
            cand = Candidate(data["c"], data["k"], data.get("t"), data.get("f"))
            router = cls(tuple(str(t) for t in data["tiers"]), str(data["embed_model"]), cand,
                         _dec(data["prior"]), arrays, int(data.get("fitted_on", 0)),
                         tuple(terms))
        except (TypeError, ValueError, KeyError) as exc:
            raise RouterError(f"router file is malformed ({exc}).", parameter="router") \
                from None
        router._check_shapes()
        if ladder is not None:
            router.check_ladder(ladder)
        if embed_model is not None and embed_model != router.embed_model:
            raise RouterError(f"router was fitted on embeddings of {router.embed_model}, not "
                              f"{embed_model}.", parameter="embed_model")
        return router

    @classmethod
    def from_json(cls, text_or_path: str | Path, **kw: Any) -> Router:
        """Read `to_json` output (a JSON string or a file path; a file is read through
        `tts.files`, bounded to `MAX_ROUTER_BYTES`, never blocking on a FIFO or device)."""
        if isinstance(text_or_path, Path) or not text_or_path.lstrip().startswith("{"):
            data = read_json_file(Path(text_or_path), _router_error,
                                  f"router file {text_or_path}", limit=MAX_ROUTER_BYTES)
            return cls.from_dict(data, **kw)
        try:
            data = json.loads(text_or_path)
        except (json.JSONDecodeError, RecursionError) as exc:
            what = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
            raise RouterError(f"router file is not valid JSON ({what}).",
                              parameter="router") from None
        return cls.from_dict(data, **kw)

    def _check_shapes(self) -> None:
        t, a, cand = len(self.tiers), self.arrays, self.candidate
        used = [p for p in _PART_NAMES if getattr(cand, p) is not None]
        keys = {k for p in used for k in _PART_ARRAYS[p]}
        if cand.c is not None or cand.f is not None:
            keys |= {"mean", "scale"}
        ok = set(a) == keys and self.prior.shape == (t,)
        f = a["mean"].shape[0] if ok and "mean" in a and a["mean"].ndim == 1 else -1
        if ok and "mean" in a:
            ok = f > 0 and a["scale"].shape == (f,) and bool(np.all(a["scale"] > 0))
        if ok and cand.k is not None:
            ok = a["points"].ndim == 2 and a["labels"].shape == (len(a["points"]), t) \
                and len(a["points"]) > 0
        if ok and cand.c is not None:
            ok = a["intercept"].shape == (t,) and a["coef"].ndim == 2 \
                and a["coef"].shape[0] == t and a["coef"].shape[1] > f
            if ok and cand.k is not None:
                ok = a["coef"].shape[1] - f == a["points"].shape[1]
        if ok and cand.t is not None:
            ok = a["idf"].shape == (len(self.terms),) and a["tintercept"].shape == (t,) \
                and a["tcoef"].shape == (t, len(self.terms)) and len(set(self.terms)) == len(
                    self.terms)
        if ok and cand.f is not None:
            ok = a["fcoef"].shape == (t, f) and a["fintercept"].shape == (t,)
        if not ok or not all(np.all(np.isfinite(v)) for v in a.values()):
            raise RouterError(f"router file arrays do not fit a {cand.name} router of {t} tiers "
                              f"(or hold non-finite numbers).", parameter="router")


def _router_error(message: str) -> RouterError:
    return RouterError(message, parameter="router")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _check_inputs(texts: Sequence[str], embeddings: np.ndarray, labels: np.ndarray,
                  tiers: int) -> tuple[np.ndarray, np.ndarray]:
    emb = np.asarray(embeddings, float)
    y = np.asarray(labels)
    if y.ndim == 1:
        y = y[:, None]
    if emb.ndim != 2 or len(emb) != len(texts) or y.shape != (len(texts), tiers):
        raise RouterError(f"need embeddings (n, D) and labels (n, {tiers}) for n = {len(texts)} "
                          f"prompts, got {emb.shape} and {y.shape}.", parameter="labels")
    if len(texts) < 2:
        raise RouterError("a router needs at least 2 labelled prompts.", parameter="labels")
    return emb, y.astype(bool)


def _fit_logistic(x: Any, y: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray]:
    """(coef (T, columns), intercept (T,)): one L2 logistic regression per tier on `x` (dense
    or sparse); a tier with one class only gets its (clipped) rate."""
    from sklearn.linear_model import LogisticRegression

    coef = np.zeros((y.shape[1], x.shape[1]))
    intercept = np.zeros(y.shape[1])
    for t in range(y.shape[1]):
        p = float(np.clip(y[:, t].mean(), 1e-3, 1 - 1e-3))
        if y[:, t].min() == y[:, t].max() or x.shape[1] == 0:
            intercept[t] = math.log(p / (1 - p))
            continue
        model = LogisticRegression(C=c, max_iter=2000).fit(x, y[:, t])
        coef[t], intercept[t] = model.coef_[0], model.intercept_[0]
    return coef, intercept


def _enc(a: np.ndarray) -> dict[str, Any]:
    a = np.ascontiguousarray(a, "<f4")
    return {"shape": list(a.shape), "float32": base64.b64encode(a.tobytes()).decode("ascii")}


def _dec(d: Mapping[str, Any]) -> np.ndarray:
    shape = tuple(int(s) for s in d["shape"])
    raw = base64.b64decode(d["float32"], validate=True)
    if len(raw) != 4 * int(np.prod(shape)):
        raise ValueError(f"array of shape {shape} needs {4 * int(np.prod(shape))} bytes, has "
                         f"{len(raw)}")
    return np.frombuffer(raw, "<f4").reshape(shape).astype(np.float32)
