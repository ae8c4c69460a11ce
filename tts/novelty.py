"""Novelty of served prompts against the questions a policy was tuned on: a drift signal that
needs neither gold labels nor audits.

A tuned policy's expected numbers hold for questions like its training questions; audits
measure disagreement with the top model, which is not error (where the cheap path beats the
top model, a shift can cost accuracy while disagreement falls). Novelty asks what kind of
question is being served.

**Summary (tune time, `fit_novelty`).** The training questions' sentence embeddings
(`tts.routing.embeddings`; the pulled all-MiniLM-L6-v2, "embed") are summarised by k-means
centroids (k = n // 5, between 2 and `MAX_CENTROIDS`; unit length). A prompt's distance is its
cosine distance to the nearest centroid. The threshold is cross-fitted: the questions are
split into `FOLDS` folds, each fold's distances are measured to centroids fitted without it,
and the threshold is the `QUANTILE` of those held-out distances. A new question like the
training ones is then *novel* (farther than the threshold) about 1 - `QUANTILE` of the time;
`expected` is the upper end of the 95% Wilson interval of the held-out share above it (a
sample of n questions measures that share only so well). `tts tune` writes the summary into
policy.json as `notes.novelty` when the embedding model is pulled, and writes none otherwise.

**Alarm (deployment, `NoveltyMonitor`).** Every planned request's prompt is embedded off the
request's path (one background thread, in batches) and marked novel or not, in order. The
alarm is raised when, once `MIN_REQUESTS` have been judged, in any trailing window of the
guard's `WINDOWS` requests (and all of them, up to the largest window), the lower end
of the Wilson interval (the guard's `ALARM_Z`) of the novel share exceeds `expected`; it clears
when no window's share itself does (hysteresis: a share hovering at the bound does not raise
and clear it by turns). Raising and clearing each log one line (logger `tts.novelty`) and call
`on_change`; the drift guard (`tts.guard`) moves to the safest plan of the frontier when it is
raised and moves back only while it is clear.
"""

from __future__ import annotations

import logging
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from tts.audit import wilson
from tts.errors import ValidationError
from tts.types import shown

__all__ = ["NoveltySummary", "NoveltyMonitor", "fit_novelty", "novelty_notes",
           "novelty_monitor", "EMBED_MODEL"]

log = logging.getLogger("tts.novelty")

EMBED_MODEL = "embed"
"""The embedding model `tts tune` summarises questions with (`tts models pull embed`)."""
QUANTILE = 0.95
FOLDS = 5
MAX_CENTROIDS = 32
MIN_QUESTIONS = 10
"""Fewer training questions than this get no summary (nothing to cross-fit a threshold on)."""
MIN_REQUESTS = 100
"""Judged requests the alarm needs before it can be raised."""
MEMO = 65_536
"""Prompts whose distance the monitor remembers (it forgets them all when full)."""
BATCH = 64
_FIELDS = ("embed_model", "model_id", "centroids", "threshold", "expected", "quantile",
           "heldout_share", "questions", "how")


@dataclass(frozen=True)
class NoveltySummary:
    """What a policy stores about its training questions (`notes.novelty`)."""

    embed_model: str
    """What `tts.routing.load_encoder` loads (a pulled name or a sentence-transformers folder)."""
    model_id: str
    """The encoder's `model_id` (name and weights hash): a summary of one model's embeddings
    is never compared with another's."""
    centroids: np.ndarray
    """(k, dim) unit rows."""
    threshold: float
    """Cosine distance to the nearest centroid above which a prompt is novel."""
    expected: float
    """Share of in-distribution prompts expected above the threshold (upper 95% bound)."""
    quantile: float = QUANTILE
    heldout_share: float = 1.0 - QUANTILE
    questions: int = 0

    def distances(self, embeddings: np.ndarray) -> np.ndarray:
        """Cosine distance of each unit row of `embeddings` to its nearest centroid."""
        if len(embeddings) == 0:
            return np.zeros(0)
        return 1.0 - (np.asarray(embeddings, np.float32) @ self.centroids.T).max(1)

    def to_dict(self) -> dict[str, Any]:
        return {"embed_model": self.embed_model, "model_id": self.model_id,
                "centroids": [[round(float(v), 5) for v in row] for row in self.centroids],
                "threshold": self.threshold, "expected": self.expected,
                "quantile": self.quantile, "heldout_share": self.heldout_share,
                "questions": self.questions,
                "how": f"k-means centroids of the training questions' {self.model_id} "
                       f"embeddings; threshold: the {self.quantile:g} quantile of held-out "
                       f"cosine distances to the nearest centroid ({FOLDS} folds by "
                       f"question); expected: upper 95% bound of the held-out share above it"}

    @classmethod
    def from_dict(cls, data: Any, where: str = "notes.novelty") -> NoveltySummary:
        """A summary from policy notes, checked field by field (ValidationError naming it)."""
        if not isinstance(data, Mapping):
            raise ValidationError(f"{where} must be an object, got {shown(data)}.",
                                  parameter=where)
        unknown = sorted(set(data) - set(_FIELDS))
        missing = [f for f in _FIELDS[:5] if f not in data]
        if unknown or missing:
            raise ValidationError(f"{where}: unknown field(s) {unknown}, missing {missing} "
                                  f"(fields: {list(_FIELDS)}).", parameter=where)
        for key in ("embed_model", "model_id"):
            if not isinstance(data[key], str) or not data[key]:
                raise ValidationError(f"{where}.{key} must be a non-empty string, got "
                                      f"{shown(data[key])}.", parameter=f"{where}.{key}")
        rows = data["centroids"]
        ok = isinstance(rows, list) and rows and all(
            isinstance(r, list) and r and len(r) == len(rows[0]) and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                for v in r) for r in rows)
        if not ok:
            raise ValidationError(f"{where}.centroids must be a non-empty list of equally long "
                                  f"lists of finite numbers.", parameter=f"{where}.centroids")
        centroids = np.asarray(rows, np.float32)
        norms = np.linalg.norm(centroids, axis=1)
        if (norms == 0).any():
            raise ValidationError(f"{where}.centroids holds a zero row.",
                                  parameter=f"{where}.centroids")
        for key, low, high in (("threshold", 0.0, 2.0), ("expected", 0.0, 1.0),
                               ("quantile", 0.0, 1.0), ("heldout_share", 0.0, 1.0)):
            v = data.get(key, 0.5)
            if not (isinstance(v, (int, float)) and not isinstance(v, bool)
                    and math.isfinite(v) and low <= v <= high) or (key == "expected" and
                                                                   not 0 < v < 1):
                raise ValidationError(f"{where}.{key} must be a number in [{low:g}, {high:g}]"
                                      f"{' (not 0 or 1)' if key == 'expected' else ''}, got "
                                      f"{shown(v)}.", parameter=f"{where}.{key}")
        questions = data.get("questions", 0)
        if not isinstance(questions, int) or isinstance(questions, bool) or questions < 0:
            raise ValidationError(f"{where}.questions must be an integer >= 0, got "
                                  f"{shown(questions)}.", parameter=f"{where}.questions")
        return cls(data["embed_model"], data["model_id"], centroids / norms[:, None],
                   float(data["threshold"]), float(data["expected"]),
                   float(data.get("quantile", QUANTILE)),
                   float(data.get("heldout_share", 1.0 - QUANTILE)), questions)


# ---- tune time ---------------------------------------------------------------------------------
def _centroids(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    k = max(1, min(k, len(np.unique(x, axis=0))))
    c = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(x).cluster_centers_
    return (c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def fit_novelty(embeddings: np.ndarray, *, embed_model: str, model_id: str,
                seed: int = 0) -> NoveltySummary:
    """The summary of training questions' unit embeddings (module docstring)."""
    x = np.asarray(embeddings, np.float32)
    n = len(x)
    if n < MIN_QUESTIONS:
        raise ValidationError(f"a novelty summary needs at least {MIN_QUESTIONS} questions, "
                              f"got {n}.", parameter="questions", value=n)
    k = min(MAX_CENTROIDS, max(2, n // 5))
    fold = np.random.default_rng(seed).permutation(n) % FOLDS
    held = np.zeros(n)
    for f in range(FOLDS):
        probe = NoveltySummary(embed_model, model_id, _centroids(x[fold != f], k, seed), 0.0,
                               0.5)
        held[fold == f] = probe.distances(x[fold == f])
    threshold = float(np.quantile(held, QUANTILE))
    above = int((held > threshold).sum())
    return NoveltySummary(embed_model, model_id, _centroids(x, k, seed), threshold,
                          float(wilson(above, n)[1]), QUANTILE, above / n, n)


def novelty_notes(questions: Sequence[str], embed_model: str = EMBED_MODEL
                  ) -> tuple[dict[str, Any] | None, str]:
    """(`notes.novelty` of a policy tuned on `questions`, or None, and what was done): None
    when the embedding model is not pulled or the questions are too few."""
    from tts.models.registry import ModelError

    if len(questions) < MIN_QUESTIONS:
        return None, f"no novelty summary: {len(questions)} training questions (< " \
                     f"{MIN_QUESTIONS})"
    from tts.routing.embeddings import embed_prompts, shared_encoder

    try:
        encoder = shared_encoder(embed_model)
    except ModelError as exc:
        return None, f"no novelty summary: {exc}"
    x = embed_prompts(questions, encoder)
    s = fit_novelty(x, embed_model=embed_model, model_id=encoder.model_id)
    return s.to_dict(), f"novelty summary: {len(s.centroids)} centroids of {s.model_id}, " \
                        f"threshold {s.threshold:.3f}, expected share {s.expected:.3f}"


# ---- deployment --------------------------------------------------------------------------------
class NoveltyMonitor:
    """Marks served prompts novel or not in a background thread and keeps the alarm.

    Args:
        summary: the policy's `NoveltySummary`.
        encoder: a loaded `tts.routing.Encoder` of `summary.model_id`.
        z: z of the Wilson interval whose lower end raises the alarm.
        windows: trailing windows (requests) the alarm tests.
        on_change: called with (raised, bound) when the alarm is raised or clears, outside
            the monitor's lock.
    """

    def __init__(self, summary: NoveltySummary, encoder: Any, *, z: float,
                 windows: Sequence[int], on_change: Callable[[bool, dict], None] | None = None):
        if encoder.model_id != summary.model_id:
            raise ValidationError(f"the policy's novelty summary (notes.novelty) was made with "
                                  f"embedding model {summary.model_id}, but "
                                  f"{summary.embed_model!r} here is {encoder.model_id}; "
                                  f"re-tune the policy on this machine (tts tune), or pull "
                                  f"the model it was made with.", parameter="notes.novelty")
        if encoder.dim != summary.centroids.shape[1]:
            raise ValidationError(f"the policy's novelty centroids have "
                                  f"{summary.centroids.shape[1]} dimensions, its embedding "
                                  f"model {encoder.dim}.", parameter="notes.novelty")
        self.summary = summary
        self.encoder = encoder
        self.z = float(z)
        self.windows = tuple(sorted(int(w) for w in windows))
        self.on_change = on_change
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="tts-novelty")
        self._pending: list[str] = []
        self._busy = False
        self._memo: dict[str, float] = {}
        self._cum = [0]  # novel requests among the first i judged, for the last windows
        self.judged = 0
        self.novel = 0
        self.failed = 0
        """Prompts that could not be embedded (not judged)."""
        self.alarm = False
        self.alarms = 0
        self.events: list[dict[str, Any]] = []

    # ---- input -------------------------------------------------------------------------------
    def observe(self, question: str) -> None:
        """Judge this served prompt (in the background; returns at once)."""
        with self._lock:
            self._pending.append(question)
            if self._busy:
                return
            self._busy = True
        self._pool.submit(self._drain)

    def prime(self, questions: Sequence[str], embeddings: np.ndarray | None = None) -> None:
        """Embed `questions` ahead, in one batch (or take their `embeddings`, unit rows of
        this summary's model), so that serving them later needs no encoder call."""
        todo = [q for q in dict.fromkeys(questions) if q not in self._memo]
        if embeddings is None:
            x = self.encoder.encode(todo) if todo else np.zeros((0, 1))
        else:
            index = {q: i for i, q in enumerate(questions)}
            x = np.asarray(embeddings, np.float32)[[index[q] for q in todo]]
        d = self.summary.distances(x)
        with self._lock:
            self._remember(dict(zip(todo, d.tolist())))

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every observed prompt is judged; False if `timeout` passed first."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._busy, timeout)

    # ---- the background thread ---------------------------------------------------------------
    def _drain(self) -> None:
        while True:
            with self._lock:
                batch, self._pending = self._pending[:BATCH], self._pending[BATCH:]
                if not batch:
                    self._busy = False
                    self._idle.notify_all()
                    return
                todo = [q for q in dict.fromkeys(batch) if q not in self._memo]
            try:
                fresh = dict(zip(todo, self.summary.distances(
                    self.encoder.encode(todo)).tolist())) if todo else {}
            except Exception as exc:  # an encoder failure loses judgements, never a request
                with self._lock:
                    self.failed += len(batch)
                log.warning("novelty: %d prompts not judged (%s: %s)", len(batch),
                            type(exc).__name__, exc)
                continue
            with self._lock:
                self._remember(fresh)
                for q in batch:
                    self._add(fresh.get(q, self._memo.get(q, 0.0)) > self.summary.threshold)
                change = self._check()
            if change is not None:
                self._announce(*change)

    def _remember(self, distances: Mapping[str, float]) -> None:
        if len(self._memo) + len(distances) > MEMO:
            self._memo.clear()
        self._memo.update(distances)

    def _add(self, novel: bool) -> None:
        self.judged += 1
        self.novel += bool(novel)
        self._cum.append(self.novel)
        if len(self._cum) > 2 * (self.windows[-1] + 1):
            del self._cum[:len(self._cum) - self.windows[-1] - 1]

    # ---- the rule ----------------------------------------------------------------------------
    def bounds(self) -> list[dict[str, Any]]:
        """Per trailing window: requests judged, novel, the share and its bounds."""
        n = self.judged
        sizes = sorted({w for w in self.windows if w < n} | {min(n, self.windows[-1])} - {0})
        out = []
        for size in sizes:
            novel = self._cum[-1] - self._cum[-1 - size]
            low, high = wilson(novel, size, self.z)
            out.append({"requests": size, "novel": novel, "share": novel / size,
                        "low": low, "high": high})
        return out

    def _check(self) -> tuple[bool, dict[str, Any]] | None:
        """The alarm's change (raised, the window that decided), or None."""
        bounds = self.bounds() if self.judged >= MIN_REQUESTS else []
        expected = self.summary.expected
        if self.alarm:  # hysteresis: it clears once no window's share is above expected
            worst = max(bounds, key=lambda b: b["share"], default=None)
            raised = worst is not None and worst["share"] > expected
        else:
            worst = max(bounds, key=lambda b: b["low"], default=None)
            raised = worst is not None and worst["low"] > expected
        if raised == self.alarm:
            return None
        self.alarm = raised
        self.alarms += raised
        self.events.append({"request": self.judged, "event": "raised" if raised else "clear",
                            **(worst or {})})
        return raised, dict(worst or {})

    def _announce(self, raised: bool, bound: dict[str, Any]) -> None:
        if raised:
            log.warning("novelty alarm: %d of the last %d prompts are novel (share %.3f, "
                        "lower bound %.3f > %.3f expected of questions like the policy's "
                        "training questions)", bound["novel"], bound["requests"],
                        bound["share"], bound["low"], self.summary.expected)
        else:
            log.warning("novelty alarm clear: no window's share of novel prompts is above "
                        "%.3f", self.summary.expected)
        if self.on_change is not None:
            self.on_change(raised, bound)

    def snapshot(self) -> dict[str, Any]:
        """The monitor's state as plain data (JSON)."""
        with self._lock:
            return {"available": True, "embed_model": self.summary.model_id,
                    "threshold": self.summary.threshold, "expected": self.summary.expected,
                    "alarm": self.alarm, "alarms": self.alarms, "judged": self.judged,
                    "novel": self.novel, "failed": self.failed,
                    "pending": len(self._pending), "windows": self.bounds(),
                    "events": self.events[-20:]}


def novelty_monitor(notes: Mapping[str, Any], *, z: float, windows: Sequence[int],
                    on_change: Callable[[bool, dict], None] | None = None
                    ) -> tuple[NoveltyMonitor | None, str]:
    """(The monitor of a policy's `notes.novelty`, or None, and why none): None when the
    policy has no summary or its embedding model is not pulled here; a malformed summary, or
    one of another embedding model, is a ValidationError."""
    from tts.models.registry import ModelError
    from tts.routing.embeddings import shared_encoder

    if "novelty" not in notes:
        return None, "the policy has no novelty summary (notes.novelty: tts tune writes one " \
                     "when the embedding model is pulled: tts models pull embed)"
    summary = NoveltySummary.from_dict(notes["novelty"], "policy notes.novelty")
    try:
        encoder = shared_encoder(summary.embed_model)
    except ModelError as exc:
        log.warning("novelty alarm off: %s", exc)
        return None, f"the embedding model of the policy's novelty summary is not available: " \
                     f"{exc}"
    return NoveltyMonitor(summary, encoder, z=z, windows=windows, on_change=on_change), ""
