"""Weight imprinting, with the semantics of Coral's ImprintingEngine.

Each class's weight is the normalised sum of its examples' L2-normalised embeddings, kept
online: adding an example is one normalisation and one addition, so a class can be added or
taught at any time, even after training. Scores are a softmax over scaled cosine similarities.
Runs on the CPU after the base graph (Edge TPU or CPU) produced the embedding.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from server.learn.base import Learner, l2_normalize


class ImprintingLearner(Learner):
    """Imprinted weights: instant, best when a class varies little.

    Args:
      dim: the embedding size D.
      scale: multiplies the cosine similarities before the softmax (sharper scores when larger).
      unknown_quantile: see ``Learner``.
    """

    name = "imprinting"

    def __init__(self, dim: Optional[int] = None, scale: float = 10.0, unknown_quantile=0.05):
        super().__init__(dim, unknown_quantile)
        self.scale = float(scale)

    def _options(self) -> dict:
        return dict(super()._options(), scale=self.scale)

    def weights(self) -> np.ndarray:
        """CxD: each class's imprinted weight (unit rows; zero for a class with no example)."""
        return self.prototypes()

    def _logits(self, x: np.ndarray) -> np.ndarray:
        return self.scale * (l2_normalize(x) @ self.weights().T)
