"""Last-layer learners: numpy only, no I/O, no threads, no Flask.

``make_learner(method)`` builds one by name; every learner shares ``base.Learner``'s API.
"""

from server.learn.auto import AutoLearner
from server.learn.base import FitReport, Learner, Prediction, l2_normalize
from server.learn.imprinting import ImprintingLearner
from server.learn.knn import KnnLearner
from server.learn.softmax_sgd import SoftmaxSgdLearner

METHODS = {
    "auto": AutoLearner,
    "imprinting": ImprintingLearner,
    "backprop": SoftmaxSgdLearner,
    "knn": KnnLearner,
}

__all__ = ["METHODS", "FitReport", "Learner", "Prediction", "l2_normalize", "make_learner"]


def make_learner(method: str, dim=None, **options) -> Learner:
    """A new learner for ``method`` (auto, imprinting, backprop or knn)."""
    try:
        cls = METHODS[method]
    except KeyError:
        raise ValueError(f"unknown method {method!r}: use one of {', '.join(METHODS)}") from None
    return cls(dim, **options)
