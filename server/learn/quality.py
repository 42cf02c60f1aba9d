"""How well the taught classes hold up: leave-one-out cross-validation on stored embeddings.

Cheap enough to recompute after every change (off the per-frame path): each example is
classified by the nearest class mean computed without it (cosine, on L2-normalised
embeddings centred by the mean of the class means, as imprinting and Auto see them), which
takes one NxC matrix product for N examples and C classes.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence, Tuple

import numpy as np

from server.learn.base import l2_normalize


class ClassQuality(NamedTuple):
    """One class: its examples, its cross-validated accuracy (None below 2 examples), and
    the classes its examples are mistaken for, as ``(class_id, share of its examples)``,
    most often first."""

    class_id: int
    examples: int
    accuracy: Optional[float]
    confused_with: Tuple[Tuple[int, float], ...]


class QualityReport(NamedTuple):
    """``matrix[i, j]``: examples of ``class_ids[i]`` classified as ``class_ids[j]``."""

    classes: Tuple[ClassQuality, ...]
    class_ids: Tuple[int, ...]
    matrix: np.ndarray


def cross_validate(
    x: np.ndarray, y: np.ndarray, class_ids: Sequence[int], min_share: float = 0.1
) -> QualityReport:
    """Leave-one-out nearest-class-mean accuracy per class and the confusion matrix.

    Args:
      x: NxD embeddings.
      y: N class ids.
      class_ids: the classes to report, in order (a class without examples is reported
        with 0 examples and no accuracy).
      min_share: the smallest share of a class's examples mistaken for another class that
        counts as a confusion.

    Returns:
      A ``QualityReport``; examples of a class with a single example are left out of the
      matrix (there is nothing to compare them with).
    """
    class_ids = tuple(int(c) for c in class_ids)
    c = len(class_ids)
    matrix = np.zeros((c, c), np.int64)
    y = np.asarray(y)
    counts = np.array([int(np.sum(y == k)) for k in class_ids], np.int64)
    if len(x) and c >= 2:
        unit = l2_normalize(np.asarray(x, np.float32))
        sums = np.stack([unit[y == k].sum(axis=0) for k in class_ids])
        taught = counts > 0
        centre = (sums[taught] / counts[taught, None]).mean(axis=0)
        row = {k: i for i, k in enumerate(class_ids)}
        own = np.array([row.get(int(k), -1) for k in y])
        usable = (own >= 0) & (counts[np.maximum(own, 0)] >= 2)
        u, own = unit[usable], own[usable]
        # every class's mean, then each example's own class's mean without it
        means = sums / np.maximum(counts, 1)[:, None]
        v = l2_normalize(u - centre)
        scores = v @ l2_normalize(means - centre).T
        without = (sums[own] - u) / (counts[own, None] - 1)
        scores[np.arange(len(u)), own] = np.sum(v * l2_normalize(without - centre), axis=1)
        scores[:, ~taught] = -np.inf
        np.add.at(matrix, (own, scores.argmax(axis=1)), 1)
    classes = []
    for i, k in enumerate(class_ids):
        judged = int(matrix[i].sum())
        accuracy = float(matrix[i, i] / judged) if judged else None
        confused = sorted(
            ((class_ids[j], float(matrix[i, j] / judged)) for j in range(c) if j != i and judged),
            key=lambda pair: -pair[1],
        )
        classes.append(
            ClassQuality(
                k, int(counts[i]), accuracy, tuple(p for p in confused if p[1] >= min_share)
            )
        )
    return QualityReport(tuple(classes), class_ids, matrix)


def needs_examples_most(report: QualityReport) -> Optional[int]:
    """The class to teach next: the lowest cross-validated accuracy, then the fewest examples
    (a class with fewer than 2 examples comes first: it cannot be judged yet). None when
    every class is perfect and equally taught, or there are fewer than 2 classes."""
    if len(report.classes) < 2:
        return None
    ranked = sorted(
        report.classes,
        key=lambda q: (q.accuracy if q.accuracy is not None else -1.0, q.examples),
    )
    best = ranked[0]
    if best.accuracy == 1.0 and len({q.examples for q in report.classes}) == 1:
        return None
    return best.class_id
