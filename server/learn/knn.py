"""K-nearest neighbours over cosine similarity, as Teachable Machine does it.

The probabilities are the share of the k nearest examples that each class holds (ties broken
by the summed similarity), which is what Teachable Machine shows as confidences.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from server.learn.base import Learner, l2_normalize


class KnnLearner(Learner):
    """Majority vote of the k most cosine-similar examples.

    Args:
      dim: the embedding size D.
      k: neighbours that vote (3 in Coral's teachable project, 10 in Teachable Machine v1).
      unknown_quantile: see ``Learner``.
    """

    name = "knn"

    def __init__(self, dim: Optional[int] = None, k: int = 3, unknown_quantile=0.05):
        super().__init__(dim, unknown_quantile)
        if k < 1:
            raise ValueError("k must be at least 1")
        self.k = int(k)

    def _options(self) -> dict:
        return dict(super()._options(), k=self.k)

    def _logits(self, x: np.ndarray) -> np.ndarray:
        bank = self._bank
        sims = l2_normalize(x) @ l2_normalize(bank.x).T  # N x M
        k = min(self.k, bank.n)
        nearest = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        column = {c: i for i, c in enumerate(self.classes)}
        cols = np.vectorize(column.__getitem__, otypes=[np.int64])(bank.cls[nearest])
        rows = np.repeat(np.arange(len(x)), k)
        votes = np.zeros((len(x), len(self.classes)))
        np.add.at(votes, (rows, cols.ravel()), 1.0)
        tie_break = np.zeros_like(votes)
        np.add.at(tie_break, (rows, cols.ravel()), np.take_along_axis(sims, nearest, 1).ravel())
        share = (votes + 1e-3 * tie_break / k) / k
        # log of the vote share: the base class's softmax turns it back into the share
        with np.errstate(divide="ignore"):
            return np.log(share)
