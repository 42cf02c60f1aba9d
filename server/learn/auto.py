"""Auto, the product default: imprint at once, then fine-tune from the imprinted weights.

Qi, Brown & Lowe, "Low-Shot Learning with Imprinted Weights" (CVPR 2018): a cosine classifier
whose weights start as imprinted class means and are then trained with cross-entropy. Here:

* every new example is imprinted at once, so a new class is predicted immediately;
* ``fit`` centres the embeddings on the examples' mean (which sharpens cosine similarities
  between classes that share a background), imprints in that space, then trains weights and
  biases with full-batch Adam, regularised towards the imprinted weights, at a fixed scale;
* a class added or taught after ``fit`` is imprinted into the fine-tuned head's space and
  joins the next fine-tune, so Auto keeps imprinting's "add a class any time".

Runs on the CPU after the base graph (Edge TPU or CPU) produced the embedding.
"""

from __future__ import annotations

import time
from typing import Dict, NamedTuple, Optional, Tuple

import numpy as np

from server.learn.base import Dataset, FitReport, Learner, Progress, l2_normalize
from server.learn.softmax_sgd import cross_entropy


class CosineHead(NamedTuple):
    """scores = scale * normalise(x - mean) . w + b, over ``class_ids``.

    Attributes:
      mean: (D,) the centre subtracted before normalising.
      w: CxD unit rows.
      b: (C,) biases.
      scale: the cosine similarities' multiplier.
      class_ids, versions: the classes and their versions it was trained on.
      report: what the training did.
    """

    mean: np.ndarray
    w: np.ndarray
    b: np.ndarray
    scale: float
    class_ids: tuple
    versions: tuple
    report: FitReport


def imprint(unit: np.ndarray, labels: np.ndarray, classes: int) -> np.ndarray:
    """CxD: per class, the normalised sum of the Nx D unit-length rows labelled with it."""
    one_hot = np.eye(classes, dtype=unit.dtype)[labels]
    return l2_normalize(one_hot.T @ unit)


class _Adam:
    """Adam over named arrays, updated in place."""

    def __init__(self, lr: float):
        self.lr, self.t, self.moments = lr, 0, {}

    def step(self, **grads_by_param) -> None:
        self.t += 1
        for name, (param, grad) in grads_by_param.items():
            m, v = self.moments.get(name, (0.0, 0.0))
            m = 0.9 * m + 0.1 * grad
            v = 0.999 * v + 0.001 * grad * grad
            self.moments[name] = (m, v)
            m_hat, v_hat = m / (1 - 0.9**self.t), v / (1 - 0.999**self.t)
            param -= (self.lr * m_hat / (np.sqrt(v_hat) + 1e-8)).astype(param.dtype)


class AutoJob(NamedTuple):
    data: Dataset
    scale: float
    learning_rate: float
    iterations: int
    reg: float
    progress_every: int

    def run(self, progress: Optional[Progress] = None) -> CosineHead:
        """Fine-tunes a centred cosine classifier from its imprinted weights (pure numpy)."""
        start = time.monotonic()
        x, labels = self.data.x, self.data.labels
        classes = len(self.data.class_ids)
        mean = x.mean(axis=0)
        unit = l2_normalize(x - mean)
        w0 = imprint(unit, labels, classes)
        w, b = w0.copy(), np.zeros(classes, np.float32)
        adam = _Adam(self.learning_rate)
        loss, accuracy = 0.0, 0.0
        for i in range(1, self.iterations + 1):
            norm = np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-12)
            wn = w / norm
            logits = self.scale * (unit @ wn.T) + b
            loss, grad = cross_entropy(logits, labels)
            grad_wn = self.scale * (grad.T @ unit)
            # gradient through the row normalisation, plus the pull towards the imprint
            grad_w = (grad_wn - np.sum(grad_wn * wn, axis=1, keepdims=True) * wn) / norm
            grad_w += self.reg * (w - w0)
            adam.step(w=(w, grad_w), b=(b, grad.sum(axis=0)))
            if progress and (i % self.progress_every == 0 or i == self.iterations):
                accuracy = float(np.mean(np.argmax(logits, axis=1) == labels))
                progress(i, loss, accuracy)
        w = l2_normalize(w)
        accuracy = float(np.mean(np.argmax(self.scale * (unit @ w.T) + b, 1) == labels))
        report = FitReport(self.iterations, loss, accuracy, (time.monotonic() - start) * 1000.0)
        return CosineHead(mean, w, b, self.scale, self.data.class_ids, self.data.versions, report)


class AutoLearner(Learner):
    """Imprinting's instant feedback and any-time classes, with backprop's accuracy.

    Args:
      dim: the embedding size D.
      scale: the cosine classifier's fixed scale (16 was best on the benchmark; README).
      learning_rate, iterations: full-batch Adam's step size and step count.
      reg: L2 pull of the weights towards their imprinted start.
      unknown_quantile: see ``Learner``.
    """

    name = "auto"

    def __init__(
        self,
        dim: Optional[int] = None,
        scale: float = 16.0,
        learning_rate: float = 0.02,
        iterations: int = 100,
        reg: float = 1e-3,
        unknown_quantile=0.05,
    ):
        super().__init__(dim, unknown_quantile)
        self.params = dict(scale=scale, learning_rate=learning_rate, iterations=iterations, reg=reg)
        self.head: Optional[CosineHead] = None
        self._imprinted: Dict[int, Tuple[int, np.ndarray]] = {}

    def _options(self) -> dict:
        return dict(super()._options(), **self.params)

    @property
    def needs_fit(self) -> bool:
        taught = [c for c, n in self.counts().items() if n]
        if len(taught) < 2:
            return False  # one class needs no boundary
        if self.head is None:
            return True
        trained = dict(zip(self.head.class_ids, self.head.versions))
        return any(trained.get(c) != self._versions[c] for c in taught)

    def training_job(self) -> Optional[AutoJob]:
        data = self.dataset()
        if len(data.x) == 0:
            return None
        return AutoJob(data, progress_every=max(1, self.params["iterations"] // 20), **self.params)

    def apply(self, head: CosineHead) -> None:
        self.head = head
        self._imprinted.clear()

    def weights(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The current (mean (D,), CxD unit weights, C biases) over ``self.classes``.

        Classes trained by the last fine-tune keep their trained rows; any other class (new,
        or taught since) is imprinted into the same centred space with a zero bias.
        """
        dim = self.dim or 0
        if self.head is None:
            return np.zeros(dim, np.float32), self.prototypes(), np.zeros(len(self.classes))
        trained = {c: i for i, c in enumerate(self.head.class_ids)}
        w = np.zeros((len(self.classes), dim), np.float32)
        b = np.zeros(len(self.classes), np.float32)
        for j, c in enumerate(self.classes):
            i = trained.get(c)
            if i is not None and self.head.versions[i] == self._versions[c]:
                w[j], b[j] = self.head.w[i], self.head.b[i]
            else:
                w[j] = self._imprint_in_head_space(c)
        return self.head.mean, w, b

    def _imprint_in_head_space(self, class_id: int) -> np.ndarray:
        version = self._versions[class_id]
        cached = self._imprinted.get(class_id)
        if cached is None or cached[0] != version:
            x = self._bank.x[self._bank.cls == class_id]
            row = np.zeros(self.dim, np.float32)
            if len(x):
                row = l2_normalize(l2_normalize(x - self.head.mean).sum(axis=0))
            cached = (version, row)
            self._imprinted[class_id] = cached
        return cached[1]

    def _logits(self, x: np.ndarray) -> np.ndarray:
        mean, w, b = self.weights()
        return self.params["scale"] * (l2_normalize(x - mean) @ w.T) + b

    def _on_remove_class(self, class_id: int) -> None:
        self._imprinted.pop(class_id, None)

    def _make_head(self, arrays: dict, class_ids: tuple, versions: tuple) -> CosineHead:
        return CosineHead(
            arrays["mean"],
            arrays["w"],
            arrays["b"],
            self.params["scale"],
            class_ids,
            versions,
            FitReport(0, 0.0, 0.0, 0.0),
        )
