"""A prompt router: per prompt and per tier (model), the chance that the tier answers right,
read from the prompt before anything is generated.

Two kinds of model, and their blend, stored as plain numbers:

* `Candidate.logistic(c)`: one L2 logistic regression per tier (scikit-learn) on the sentence
  embedding plus standardised prompt features (`tts.routing.features`).
* `Candidate.knn(k)`: the share of the k most similar fitted prompts (cosine of embeddings)
  that the tier answered right, shrunk toward the tier's mean accuracy.
* `Candidate.blend(c, k)`: the mean of the two probabilities (the logistic part reads the
  whole space, the kNN part the prompt's neighbourhood).

`Router.to_json` / `Router.from_json` write and read the fitted numbers as JSON (arrays as
base64 float32; no pickle). A router knows the tiers and the embedding model it was fitted
for and refuses anything else: another ladder, a tier it never saw, embeddings of another
model.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from tts.errors import UnknownNameError, ValidationError
from tts.files import MAX_FILE_BYTES, read_json_file
from tts.routing.embeddings import Encoder
from tts.routing.features import design, prompt_matrix, standardiser

__all__ = ["Candidate", "Router", "RouterError", "FORMAT", "DEFAULT_CANDIDATES"]

FORMAT = "tts-router/1"
MAX_ROUTER_BYTES = MAX_FILE_BYTES
"""Largest router file read (a kNN router stores its fitted embeddings: ~2 KiB a prompt)."""
SHRINK = 2.0
"""kNN: pseudo-neighbours at the tier's mean accuracy added to the k real ones."""


class RouterError(ValidationError):
    """A router file is malformed, or used for tiers or embeddings it was not fitted for."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """A model family and its hyperparameters: logistic regression with inverse L2 strength
    `c`, kNN over `k` neighbours, or both (a blend: their probabilities averaged)."""

    c: float | None = None
    """Inverse L2 strength of the logistic part (None: no logistic part)."""
    k: int | None = None
    """Neighbours of the kNN part (None: no kNN part)."""

    def __post_init__(self) -> None:
        if self.c is None and self.k is None:
            raise RouterError("a router candidate needs a logistic part (c) or a kNN part (k).",
                              parameter="candidate")
        if self.c is not None and (isinstance(self.c, bool) or not isinstance(
                self.c, (int, float)) or not math.isfinite(self.c) or self.c <= 0):
            raise RouterError(f"logistic c must be a positive number, got {self.c!r}.",
                              parameter="c", value=self.c)
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
        if self.c is not None and self.k is not None:
            return (Candidate(c=self.c), Candidate(k=self.k))
        return (self,)

    @property
    def name(self) -> str:
        return "+".join(f"logistic(C={p.c:g})" if p.c is not None else f"knn(k={p.k})"
                        for p in self.parts)


DEFAULT_CANDIDATES: tuple[Candidate, ...] = (
    Candidate.logistic(0.3), Candidate.knn(50), Candidate.knn(150), Candidate.blend(0.3, 50),
    Candidate.blend(0.3, 150))
"""What nested cross-fitting chooses among unless told otherwise."""


@dataclass(frozen=True, eq=False)
class Router:
    """Fitted per-tier P(correct) from prompt embeddings (+ prompt features)."""

    tiers: tuple[str, ...]
    """The models it predicts for, cheapest first (the ladder it was fitted on)."""
    embed_model: str
    """`Encoder.model_id` of the embeddings it was fitted on."""
    candidate: Candidate
    prior: np.ndarray
    """(T,) each tier's accuracy on the fitting set."""
    arrays: Mapping[str, np.ndarray] = field(default_factory=dict)
    """logistic: mean, scale (F,), coef (T, D+F), intercept (T,); knn: points (N, D),
    labels (N, T)."""
    fitted_on: int = 0
    """Prompts in the fitting set."""

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
        if candidate.k is not None:
            arrays.update(points=emb, labels=y)
        if candidate.c is not None:
            arrays.update(_fit_logistic(emb, prompt_matrix(texts), y, candidate.c))
        # Stored as float32 in memory as in files, so a reloaded router predicts the same.
        return cls(tuple(tiers), embed_model, candidate, y.mean(0).astype(np.float32),
                   {k: np.asarray(v, np.float32) for k, v in arrays.items()}, len(y))

    # ---- prediction ------------------------------------------------------------------------
    def predict(self, texts: Sequence[str], *, embeddings: np.ndarray | None = None,
                encoder: Encoder | None = None) -> np.ndarray:
        """(n, T) P(tier answers right) per prompt, tiers in `self.tiers` order. Pass the
        prompts' embeddings (from the router's embedding model) or an encoder to make them."""
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
        parts = []
        if self.candidate.c is not None:
            a = self.arrays
            z = design(emb, prompt_matrix(texts), a["mean"], a["scale"]) @ a["coef"].T \
                + a["intercept"]
            parts.append(1.0 / (1.0 + np.exp(-z)))
        if self.candidate.k is not None:
            parts.append(self._knn(emb))
        return sum(parts) / len(parts)

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
    def dim(self) -> int:
        a = self.arrays
        return int(a["points"].shape[1] if "points" in a
                   else a["coef"].shape[1] - a["mean"].shape[0])

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
                "c": self.candidate.c, "k": self.candidate.k,
                "prior": _enc(self.prior), "fitted_on": self.fitted_on,
                "arrays": {k: _enc(v) for k, v in self.arrays.items()}}

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict())
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, ladder: Sequence[str] | None = None,
                  embed_model: str | None = None) -> Router:
        """Read a router; with `ladder` / `embed_model`, refuse one fitted for others."""
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise RouterError(f"not a router file: expected \"format\": \"{FORMAT}\".",
                              parameter="router")
        need = {"tiers", "embed_model", "c", "k", "prior", "arrays"}
        if need - set(data):
            raise RouterError(f"router file lacks {sorted(need - set(data))}.",
                              parameter="router")
        try:
            arrays = {str(k): _dec(v) for k, v in dict(data["arrays"]).items()}
            router = cls(tuple(str(t) for t in data["tiers"]), str(data["embed_model"]),
                         Candidate(data["c"], data["k"]), _dec(data["prior"]), arrays,
                         int(data.get("fitted_on", 0)))
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
        t, a = len(self.tiers), self.arrays
        keys = (("mean", "scale", "coef", "intercept") if self.candidate.c is not None else ()) \
            + (("points", "labels") if self.candidate.k is not None else ())
        ok = set(a) == set(keys) and self.prior.shape == (t,)
        if ok and self.candidate.k is not None:
            ok = a["points"].ndim == 2 and a["labels"].shape == (len(a["points"]), t) \
                and len(a["points"]) > 0
        if ok and self.candidate.c is not None:
            f = a["mean"].shape[0] if a["mean"].ndim == 1 else -1
            ok = a["scale"].shape == (f,) and a["intercept"].shape == (t,) \
                and a["coef"].ndim == 2 and a["coef"].shape[0] == t and a["coef"].shape[1] > f
            if ok and self.candidate.k is not None:
                ok = a["coef"].shape[1] - f == a["points"].shape[1]
        if not ok or not all(np.all(np.isfinite(v)) for v in a.values()):
            raise RouterError(f"router file arrays do not fit a {self.candidate.name} router "
                              f"of {t} tiers (or hold non-finite numbers).", parameter="router")


def _router_error(message: str) -> RouterError:
    return RouterError(message, parameter="router")


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


def _fit_logistic(emb: np.ndarray, feats: np.ndarray, y: np.ndarray,
                  c: float) -> dict[str, np.ndarray]:
    from sklearn.linear_model import LogisticRegression

    mean, scale = standardiser(feats)
    x = design(emb, feats, mean, scale)
    coef = np.zeros((y.shape[1], x.shape[1]))
    intercept = np.zeros(y.shape[1])
    for t in range(y.shape[1]):
        p = float(np.clip(y[:, t].mean(), 1e-3, 1 - 1e-3))
        if y[:, t].min() == y[:, t].max():  # one class only: its (clipped) rate
            intercept[t] = math.log(p / (1 - p))
            continue
        model = LogisticRegression(C=c, max_iter=2000).fit(x, y[:, t])
        coef[t], intercept[t] = model.coef_[0], model.intercept_[0]
    return {"mean": mean, "scale": scale, "coef": coef, "intercept": intercept}


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
