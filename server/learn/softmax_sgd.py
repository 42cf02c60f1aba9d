"""Softmax regression trained by SGD: a faithful baseline of Coral's on-device backprop.

Like pycoral's ``SoftmaxRegression``: weights drawn from N(0, 1) x weight_scale, zero bias,
minibatches sampled with replacement, cross-entropy with optional L2 regularisation, plain SGD,
on the raw (dequantised) embeddings. Defaults are those of Coral's ``backprop_last_layer.py``
example. The base graph runs on the Edge TPU or CPU; this fully connected layer on the CPU.
Adding a class means training every class again.
"""

from __future__ import annotations

import time
from typing import NamedTuple, Optional

import numpy as np

from server.learn.base import Dataset, FitReport, Learner, Progress, softmax


class SgdHead(NamedTuple):
    """A trained layer: DxC weights, C biases, the class ids and versions it was trained on."""

    w: np.ndarray
    b: np.ndarray
    class_ids: tuple
    versions: tuple
    report: FitReport


def cross_entropy(logits: np.ndarray, labels: np.ndarray):
    """Mean cross-entropy of NxC logits and the gradient of the loss w.r.t. the logits."""
    probs = softmax(logits)
    n = len(labels)
    loss = -np.mean(np.log(np.maximum(probs[np.arange(n), labels], 1e-12)))
    grad = probs
    grad[np.arange(n), labels] -= 1.0
    return float(loss), grad / n


class SgdJob(NamedTuple):
    data: Dataset
    weight_scale: float
    learning_rate: float
    batch_size: int
    iterations: int
    reg: float
    seed: Optional[int]
    progress_every: int

    def run(self, progress: Optional[Progress] = None) -> SgdHead:
        """Trains the layer from scratch, as pycoral's ``train_with_sgd`` does."""
        start = time.monotonic()
        x, labels = self.data.x, self.data.labels
        rng = np.random.default_rng(self.seed)
        dim, classes = x.shape[1], len(self.data.class_ids)
        w = (rng.standard_normal((dim, classes)) * self.weight_scale).astype(np.float32)
        b = np.zeros(classes, np.float32)
        loss = 0.0
        for i in range(1, self.iterations + 1):
            batch = rng.integers(0, len(x), self.batch_size)
            xb = x[batch]
            loss, grad = cross_entropy(xb @ w + b, labels[batch])
            loss += 0.5 * self.reg * float(np.sum(w * w))
            w -= self.learning_rate * (xb.T @ grad + self.reg * w).astype(np.float32)
            b -= self.learning_rate * grad.sum(axis=0).astype(np.float32)
            if progress and (i % self.progress_every == 0 or i == self.iterations):
                progress(i, loss, _accuracy(x @ w + b, labels))
        report = FitReport(
            self.iterations, loss, _accuracy(x @ w + b, labels), (time.monotonic() - start) * 1000.0
        )
        return SgdHead(w, b, self.data.class_ids, self.data.versions, report)


def _accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """pycoral's ``get_accuracy``: the share of rows whose arg-max is the label."""
    return float(np.mean(np.argmax(logits, axis=1) == labels)) if len(labels) else 0.0


class SoftmaxSgdLearner(Learner):
    """Last-layer backpropagation: more accurate with many, varied examples; must be trained.

    Until ``fit`` runs, predictions are uniform over the taught classes; a class added after
    training gets probability 0 until the next ``fit``.

    Args:
      dim: the embedding size D.
      weight_scale, learning_rate, batch_size, iterations, reg: as in pycoral.
      seed: for the initial weights and the minibatches (None: not reproducible).
      unknown_quantile: see ``Learner``.
    """

    name = "backprop"

    def __init__(
        self,
        dim: Optional[int] = None,
        weight_scale: float = 0.05,
        learning_rate: float = 0.01,
        batch_size: int = 100,
        iterations: int = 500,
        reg: float = 0.0,
        seed: Optional[int] = 0,
        unknown_quantile=0.05,
    ):
        super().__init__(dim, unknown_quantile)
        self.params = dict(
            weight_scale=weight_scale,
            learning_rate=learning_rate,
            batch_size=batch_size,
            iterations=iterations,
            reg=reg,
            seed=seed,
        )
        self.head: Optional[SgdHead] = None

    def _options(self) -> dict:
        return dict(super()._options(), **self.params)

    @property
    def needs_fit(self) -> bool:
        taught = {c for c, n in self.counts().items() if n}
        if self.head is None:
            return bool(taught)
        current = dict(zip(self.classes, (self._versions[c] for c in self.classes)))
        trained = dict(zip(self.head.class_ids, self.head.versions))
        return any(current.get(c) != trained.get(c) for c in taught | set(trained))

    def training_job(self) -> Optional[SgdJob]:
        data = self.dataset()
        if len(data.x) == 0:
            return None
        return SgdJob(data, progress_every=max(1, self.params["iterations"] // 20), **self.params)

    def apply(self, head: SgdHead) -> None:
        self.head = head

    def _logits(self, x: np.ndarray) -> np.ndarray:
        out = np.zeros((len(x), len(self.classes)))
        if self.head is None:
            return out
        logits = x @ self.head.w + self.head.b
        column = {c: i for i, c in enumerate(self.head.class_ids)}
        for j, c in enumerate(self.classes):
            out[:, j] = logits[:, column[c]] if c in column else -np.inf
        return out

    def _on_remove_class(self, class_id: int) -> None:
        if self.head is not None and class_id in self.head.class_ids:
            self.head = None  # a layer with a deleted class's column would mislead

    def _make_head(self, arrays: dict, class_ids: tuple, versions: tuple) -> SgdHead:
        return SgdHead(arrays["w"], arrays["b"], class_ids, versions, FitReport(0, 0.0, 0.0, 0.0))
