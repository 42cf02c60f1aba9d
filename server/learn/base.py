"""What every last-layer learner shares: its examples, its API and the "unknown" verdict.

Numpy only: no I/O, no threads, no Flask. A learner keeps the examples it was taught
(embeddings of shape (D,), each with an integer id and a class id), so that examples can be
removed one by one (undo, delete) and the learner can be rebuilt from storage.

Training that takes time is split in three steps so that a caller can run the middle one on
another thread while the learner keeps predicting::

    job = learner.training_job()    # a frozen copy of the data (owner's thread)
    head = job.run(progress)        # pure computation (any thread)
    learner.apply(head)             # owner's thread; classes changed meanwhile are kept right

``learner.fit()`` does all three at once.
"""

from __future__ import annotations

import time
from typing import Callable, Dict, Iterable, NamedTuple, Optional, Sequence

import numpy as np

Progress = Callable[[int, float, float], None]
"""progress(iteration, loss, accuracy), called during training."""


def l2_normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Scales each vector along ``axis`` to unit length (zero vectors stay zero)."""
    norm = np.linalg.norm(x, axis=axis, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of an NxC array; columns that are -inf get probability 0."""
    z = logits - np.max(logits, axis=1, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=1, keepdims=True)


def _check_embeddings(x: np.ndarray, dim: Optional[int]) -> None:
    """Raises ValueError unless ``x`` is NxD (D = ``dim`` when known) and finite."""
    if x.ndim != 2 or (dim is not None and x.shape[1] != dim):
        raise ValueError(f"expected embeddings of size {dim or 'D'}, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("embeddings must be finite (no NaN or infinity)")


class Prediction(NamedTuple):
    """Scores for N embeddings over the learner's C classes.

    Attributes:
      class_ids: the C class ids, in column order.
      probs: NxC float32 probabilities (rows sum to 1; all zero when C is 0).
      top: N indices into ``class_ids`` of the most likely class (-1 when C is 0).
      unknown: N booleans: the embedding is further from the top class's examples than the
        examples themselves are (see ``Learner.unknown_quantile``).
      similarity: N cosine similarities between each embedding and its top class's prototype.
    """

    class_ids: tuple
    probs: np.ndarray
    top: np.ndarray
    unknown: np.ndarray
    similarity: np.ndarray

    def top_class(self, row: int = 0) -> Optional[int]:
        index = int(self.top[row])
        return None if index < 0 else self.class_ids[index]


class FitReport(NamedTuple):
    """What a training run did: iterations, final loss and training accuracy, milliseconds."""

    iterations: int
    loss: float
    accuracy: float
    ms: float


class Dataset(NamedTuple):
    """A frozen copy of a learner's examples: NxD embeddings, N labels (column indices)."""

    x: np.ndarray
    labels: np.ndarray
    class_ids: tuple
    versions: tuple


class _Bank:
    """Embeddings with ids and class ids in a growable buffer (amortised O(1) append)."""

    def __init__(self, dim: int):
        self.dim = dim
        self.n = 0
        self._x = np.zeros((16, dim), np.float32)
        self._ids = np.zeros(16, np.int64)
        self._cls = np.zeros(16, np.int64)

    def append(self, x: np.ndarray, ids: np.ndarray, cls: int) -> None:
        need = self.n + len(x)
        if need > len(self._x):
            cap = max(need, 2 * len(self._x))
            for name in ("_x", "_ids", "_cls"):
                old = getattr(self, name)
                new = np.zeros((cap,) + old.shape[1:], old.dtype)
                new[: self.n] = old[: self.n]
                setattr(self, name, new)
        self._x[self.n : need] = x
        self._ids[self.n : need] = ids
        self._cls[self.n : need] = cls
        self.n = need

    def keep(self, mask: np.ndarray) -> None:
        count = int(mask.sum())
        for name in ("_x", "_ids", "_cls"):
            arr = getattr(self, name)
            arr[:count] = arr[: self.n][mask]
        self.n = count

    @property
    def x(self) -> np.ndarray:
        return self._x[: self.n]

    @property
    def ids(self) -> np.ndarray:
        return self._ids[: self.n]

    @property
    def cls(self) -> np.ndarray:
        return self._cls[: self.n]


class Learner:
    """The shared interface and bookkeeping of every last-layer learner.

    Subclasses implement ``_logits(x)`` (NxD embeddings → NxC scores over ``self.classes``)
    and, when they train, ``training_job``/``apply``.

    Args:
      dim: the embedding size D (taken from the first example when None).
      unknown_quantile: an embedding is "unknown" when its similarity to the top class's
        prototype is below this quantile of the class's own examples' leave-one-out
        similarities; None switches the verdict off.
    """

    name = "base"

    def __init__(self, dim: Optional[int] = None, unknown_quantile: Optional[float] = 0.05):
        if unknown_quantile is not None and not 0.0 <= unknown_quantile < 1.0:
            raise ValueError("unknown_quantile must be in [0, 1)")
        self.dim = dim
        self.unknown_quantile = unknown_quantile
        self.classes: list = []
        # A class's version changes with every change to its examples; versions come from one
        # counter, so a class id that is removed and added again never repeats an old version.
        self._versions: Dict[int, int] = {}
        self._clock = 0
        self._bank: Optional[_Bank] = _Bank(dim) if dim else None
        self._next_id = 1
        self._sums: Dict[int, np.ndarray] = {}
        self._thresholds: Optional[Dict[int, float]] = None

    def set_unknown_quantile(self, quantile: Optional[float]) -> None:
        """Changes ``unknown_quantile`` (see the class docstring); the thresholds follow."""
        if quantile is not None and not 0.0 <= quantile < 1.0:
            raise ValueError("unknown_quantile must be in [0, 1)")
        self.unknown_quantile = quantile
        self._thresholds = None

    # ----- examples -------------------------------------------------------------------
    def add_class(self, class_id: int) -> None:
        """Adds a class with no examples (it is never predicted until it has one)."""
        class_id = int(class_id)
        if class_id not in self._versions:
            self.classes.append(class_id)
            self._changed(class_id)

    def add(self, class_id: int, embeddings: np.ndarray, ids: Optional[Sequence[int]] = None):
        """Teaches ``class_id`` with NxD (or D) ``embeddings``; adds the class if it is new.

        Returns:
          The N example ids (``ids`` when given, else new ones).
        """
        x = np.asarray(embeddings, np.float32)
        if x.ndim == 1:
            x = x[np.newaxis]
        _check_embeddings(x, self.dim)
        if self.dim is None:
            self.dim = x.shape[1]
        if ids is None:
            ids = np.arange(self._next_id, self._next_id + len(x))
        ids = np.asarray(ids, np.int64).reshape(-1)
        if len(ids) != len(x):
            raise ValueError("one id per embedding")
        self._next_id = max(self._next_id, int(ids.max(initial=0)) + 1)
        if self._bank is None:
            self._bank = _Bank(self.dim)
        class_id = int(class_id)
        self.add_class(class_id)
        self._bank.append(x, ids, class_id)
        unit = l2_normalize(x)
        self._sums[class_id] = self._sums.get(class_id, 0) + unit.sum(axis=0)
        self._changed(class_id)
        self._on_add(class_id, unit)
        return ids

    def remove(self, ids: Iterable[int]) -> int:
        """Removes examples by id; returns how many were removed."""
        if self._bank is None:
            return 0
        gone = np.isin(self._bank.ids, np.asarray(list(ids), np.int64))
        touched = set(int(c) for c in self._bank.cls[gone])
        self._bank.keep(~gone)
        for class_id in touched:
            self._recompute_sum(class_id)
            self._changed(class_id)
        return int(gone.sum())

    def clear_class(self, class_id: int) -> None:
        """Removes every example of ``class_id``; the class stays. Unknown ids are ignored."""
        if int(class_id) not in self._versions:
            return
        if self._bank is not None:
            self._bank.keep(self._bank.cls != int(class_id))
        self._sums.pop(int(class_id), None)
        self._changed(int(class_id))

    def remove_class(self, class_id: int) -> None:
        """Removes ``class_id`` and its examples."""
        class_id = int(class_id)
        if class_id not in self._versions:
            return
        self.clear_class(class_id)
        self.classes.remove(class_id)
        del self._versions[class_id]
        self._on_remove_class(class_id)

    def counts(self) -> Dict[int, int]:
        """Examples per class id."""
        cls = self._bank.cls if self._bank is not None else np.zeros(0, np.int64)
        return {c: int(np.sum(cls == c)) for c in self.classes}

    def example_ids(self, class_id: int) -> np.ndarray:
        if self._bank is None:
            return np.zeros(0, np.int64)
        return self._bank.ids[self._bank.cls == int(class_id)].copy()

    def nearest(self, embedding: np.ndarray, class_id: int, k: int = 3) -> list:
        """Ids of the ``k`` examples of ``class_id`` most cosine-similar to ``embedding`` (D,)."""
        if self._bank is None:
            return []
        mask = self._bank.cls == int(class_id)
        if not mask.any():
            return []
        sims = l2_normalize(self._bank.x[mask]) @ l2_normalize(np.asarray(embedding, np.float32))
        order = np.argsort(-sims)[:k]
        return [int(i) for i in self._bank.ids[mask][order]]

    def dataset(self) -> Dataset:
        """A copy of the examples, labels as column indices into ``self.classes``."""
        if self._bank is None:
            return Dataset(np.zeros((0, self.dim or 0), np.float32), np.zeros(0, np.int64), (), ())
        index = {c: i for i, c in enumerate(self.classes)}
        labels = np.array([index[int(c)] for c in self._bank.cls], np.int64)
        versions = tuple(self._versions[c] for c in self.classes)
        return Dataset(self._bank.x.copy(), labels, tuple(self.classes), versions)

    # ----- prototypes and the "unknown" verdict ----------------------------------------------
    def prototypes(self) -> np.ndarray:
        """CxD imprinted weights: the normalised sum of each class's normalised embeddings."""
        dim = self.dim or 0
        rows = [self._sums.get(c, np.zeros(dim, np.float32)) for c in self.classes]
        return l2_normalize(np.asarray(rows, np.float32).reshape(len(rows), dim))

    def _unknown_thresholds(self) -> Dict[int, float]:
        """Per class: the ``unknown_quantile`` of its examples' leave-one-out similarities.

        A class with a single example borrows the pooled threshold of the other classes.
        """
        if self._thresholds is not None:
            return self._thresholds
        thresholds: Dict[int, float] = {}
        pooled = []
        if self._bank is not None and self.unknown_quantile is not None:
            unit = l2_normalize(self._bank.x)
            for c in self.classes:
                mask = self._bank.cls == c
                if mask.sum() < 2:
                    continue
                rest = l2_normalize(self._sums[c][np.newaxis] - unit[mask])
                loo = np.sum(rest * unit[mask], axis=1)
                thresholds[c] = float(np.quantile(loo, self.unknown_quantile))
                pooled.extend(loo)
            if pooled:
                fallback = float(np.quantile(pooled, self.unknown_quantile))
                for c in self.classes:
                    thresholds.setdefault(c, fallback)
        self._thresholds = thresholds
        return thresholds

    # ----- prediction ---------------------------------------------------------------------
    def predict(self, embeddings: np.ndarray) -> Prediction:
        """Scores NxD (or D) embeddings over every class."""
        x = np.asarray(embeddings, np.float32)
        if x.ndim == 1:
            x = x[np.newaxis]
        _check_embeddings(x, self.dim)
        n = len(x)
        counts = self.counts()
        taught = np.array([counts[c] > 0 for c in self.classes], bool)
        if not taught.any():
            c = len(self.classes)
            probs = np.zeros((n, c), np.float32)
            return Prediction(
                tuple(self.classes), probs, np.full(n, -1), np.ones(n, bool), np.zeros(n)
            )
        logits = np.asarray(self._logits(x), np.float64)
        logits[:, ~taught] = -np.inf
        probs = softmax(logits).astype(np.float32)
        top = np.argmax(probs, axis=1)
        similarity = np.sum(l2_normalize(x) * self.prototypes()[top], axis=1)
        thresholds = self._unknown_thresholds()
        limit = np.array([thresholds.get(self.classes[t], -np.inf) for t in top])
        return Prediction(tuple(self.classes), probs, top, similarity < limit, similarity)

    def predict_proba(self, embeddings: np.ndarray) -> np.ndarray:
        """NxC probabilities over ``self.classes``."""
        return self.predict(embeddings).probs

    def accuracy(self, embeddings: np.ndarray, class_ids: Sequence[int]) -> float:
        """Fraction of NxD ``embeddings`` whose top class is the given class id."""
        pred = self.predict(embeddings)
        got = np.array([pred.class_ids[t] if t >= 0 else -1 for t in pred.top])
        return float(np.mean(got == np.asarray(class_ids)))

    # ----- training -----------------------------------------------------------------------
    @property
    def needs_fit(self) -> bool:
        """Whether ``fit`` would change predictions (learners that train override this)."""
        return False

    def training_job(self):
        """A frozen copy of what training needs, whose ``run(progress)`` returns a head."""
        return None

    def apply(self, head) -> None:
        """Installs a head computed by ``training_job().run()``."""

    def fit(self, progress: Optional[Progress] = None) -> FitReport:
        """Trains now, on this thread."""
        start = time.monotonic()
        job = self.training_job()
        if job is None:
            return FitReport(0, 0.0, 0.0, 0.0)
        head = job.run(progress)
        self.apply(head)
        return head.report._replace(ms=(time.monotonic() - start) * 1000.0)

    # ----- persistence --------------------------------------------------------------------
    def state(self) -> Dict[str, np.ndarray]:
        """Everything this learner knows, as plain arrays (see ``load_state``)."""
        bank = self._bank
        state = {
            "method": np.array(self.name),
            "classes": np.array(self.classes, np.int64),
            "ids": bank.ids.copy() if bank else np.zeros(0, np.int64),
            "labels": bank.cls.copy() if bank else np.zeros(0, np.int64),
            "x": bank.x.copy() if bank else np.zeros((0, self.dim or 0), np.float32),
        }
        state.update({"head_" + k: v for k, v in self._head_state().items()})
        return state

    def load_state(self, state: Dict[str, np.ndarray]) -> None:
        """Replaces everything with ``state`` from ``state()`` (of a learner of any method)."""
        self.__init__(dim=state["x"].shape[1] or None, **self._options())
        for c in state["classes"]:
            self.add_class(int(c))
        for c in state["classes"]:
            mask = state["labels"] == c
            if mask.any():
                self.add(int(c), state["x"][mask], state["ids"][mask])
        if str(state["method"]) == self.name:
            head = {k[5:]: v for k, v in state.items() if k.startswith("head_")}
            if head:
                self._load_head_state(head)

    # ----- hooks for subclasses -----------------------------------------------------------
    def _options(self) -> dict:
        return {"unknown_quantile": self.unknown_quantile}

    def _logits(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _on_add(self, class_id: int, unit: np.ndarray) -> None:
        """Called after NxD normalised examples were added to ``class_id``."""

    def _on_remove_class(self, class_id: int) -> None:
        """Called after ``class_id`` was removed."""

    def _head_state(self) -> Dict[str, np.ndarray]:
        """The trained head's arrays, and which of its classes were current when saved."""
        head = getattr(self, "head", None)
        if head is None:
            return {}
        arrays = {k: v for k, v in head._asdict().items() if isinstance(v, np.ndarray)}
        arrays["class_ids"] = np.array(head.class_ids, np.int64)
        arrays["current"] = np.array(
            [self._versions.get(c) == v for c, v in zip(head.class_ids, head.versions)], bool
        )
        return arrays

    def _load_head_state(self, arrays: Dict[str, np.ndarray]) -> None:
        # Versions are not kept across a reload: a class the head was current for gets the
        # reloaded class's version, a class taught after training gets one that never matches.
        class_ids = tuple(int(c) for c in arrays["class_ids"])
        versions = tuple(
            self._versions[c] if current and c in self._versions else -1
            for c, current in zip(class_ids, arrays["current"])
        )
        self.head = self._make_head(arrays, class_ids, versions)

    def _make_head(self, arrays: Dict[str, np.ndarray], class_ids: tuple, versions: tuple):
        """A head from saved arrays (learners that train override this)."""
        raise NotImplementedError

    def _recompute_sum(self, class_id: int) -> None:
        mask = self._bank.cls == class_id
        if mask.any():
            self._sums[class_id] = l2_normalize(self._bank.x[mask]).sum(axis=0)
        else:
            self._sums.pop(class_id, None)

    def _changed(self, class_id: int) -> None:
        self._clock += 1
        self._versions[class_id] = self._clock
        self._thresholds = None
