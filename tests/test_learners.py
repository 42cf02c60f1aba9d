"""The numpy learners in server/learn, on seeded synthetic Gaussian clusters."""

import numpy as np
import pytest

from server.learn import METHODS, make_learner
from server.learn.imprinting import ImprintingLearner
from server.learn.knn import KnnLearner
from server.learn.softmax_sgd import SoftmaxSgdLearner

D = 64


class Clusters:
    """C Gaussian clusters in D dimensions around random centres, drawn from a seeded Generator.

    With the default separation the centres are ~24 apart and each point ~8 from its centre:
    cosine similarity is ~0.9 within a cluster and ~0 between clusters.
    """

    def __init__(self, n_classes, *, seed=0, separation=3.0, spread=1.0):
        self.rng = np.random.default_rng(seed)
        self.means = self.rng.normal(0.0, separation, (n_classes, D))
        self.spread = spread

    def sample(self, class_index, n):
        """n x D float32 points of one cluster."""
        noise = self.rng.normal(0.0, self.spread, (n, D))
        return (self.means[class_index] + noise).astype(np.float32)

    def labelled(self, class_indices, n):
        """n points of each cluster, stacked: (len*n x D points, their class indices)."""
        x = np.concatenate([self.sample(c, n) for c in class_indices])
        return x, np.repeat(np.asarray(class_indices), n)


def taught(method, clusters, class_indices, n=30, **options):
    """A learner of ``method`` taught n points of each cluster (class id = cluster index)."""
    learner = make_learner(method, **options)
    for c in class_indices:
        learner.add(c, clusters.sample(c, n))
    return learner


def unit_mean(x):
    x = np.asarray(x, np.float64)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    mean = unit.mean(axis=0)
    return mean / np.linalg.norm(mean)


def predicted(learner, x):
    """The predicted class id per row (-1 for none)."""
    pred = learner.predict(x)
    return np.array([pred.class_ids[t] if t >= 0 else -1 for t in pred.top])


all_methods = pytest.mark.parametrize("method", list(METHODS))


# ----- accuracy ---------------------------------------------------------------------------
@all_methods
def test_fit_classifies_held_out_points_of_separated_clusters(method):
    clusters = Clusters(5, seed=1)
    learner = taught(method, clusters, range(5))
    learner.fit()
    x, y = clusters.labelled(range(5), 40)
    assert learner.accuracy(x, y) >= 0.9


def test_backprop_fits_linearly_separable_training_set():
    clusters = Clusters(4, seed=2)
    x, y = clusters.labelled(range(4), 50)
    learner = SoftmaxSgdLearner(iterations=1000, seed=0)
    for c in range(4):
        learner.add(c, x[y == c])
    report = learner.fit()
    assert report.accuracy >= 0.95
    assert learner.accuracy(x, y) >= 0.95


def test_backprop_progress_reports_increasing_iterations_and_finite_loss():
    clusters = Clusters(3, seed=3)
    learner = taught("backprop", clusters, range(3), iterations=200)
    calls = []
    report = learner.fit(lambda i, loss, acc: calls.append((i, loss, acc)))
    iterations = [i for i, _, _ in calls]
    assert len(calls) >= 2
    assert iterations == sorted(set(iterations))
    assert iterations[-1] == report.iterations == 200
    assert all(np.isfinite(loss) for _, loss, _ in calls)
    assert all(0.0 <= acc <= 1.0 for _, _, acc in calls)


@pytest.mark.parametrize("method", ["auto", "backprop"])
def test_training_learners_need_fit_once_taught_and_not_after(method):
    learner = taught(method, Clusters(3, seed=4), range(3))
    assert learner.needs_fit
    learner.fit()
    assert not learner.needs_fit


# ----- imprinting -------------------------------------------------------------------------
def test_imprinted_weights_are_normalised_means_of_normalised_embeddings():
    clusters = Clusters(3, seed=5)
    learner = ImprintingLearner()
    data = {c: clusters.sample(c, 12) for c in range(3)}
    for c, x in data.items():
        learner.add(c, x[:5])
        learner.add(c, x[5:])  # weights are kept online, over several adds
    expected = np.stack([unit_mean(data[c]) for c in learner.classes])
    np.testing.assert_allclose(learner.weights(), expected, rtol=1e-5, atol=1e-6)


def test_imprinted_weights_follow_removed_examples():
    clusters = Clusters(2, seed=6)
    learner = ImprintingLearner()
    data = {c: clusters.sample(c, 10) for c in range(2)}
    ids = {c: learner.add(c, x) for c, x in data.items()}
    assert learner.remove(list(ids[0][:4]) + list(ids[1][-3:])) == 7
    expected = np.stack([unit_mean(data[0][4:]), unit_mean(data[1][:-3])])
    np.testing.assert_allclose(learner.weights(), expected, rtol=1e-5, atol=1e-6)


# ----- a class added after fitting --------------------------------------------------------
@all_methods
def test_class_added_after_fit_is_predicted_after_refit(method):
    clusters = Clusters(4, seed=7)
    learner = taught(method, clusters, range(3))
    learner.fit()
    learner.add(3, clusters.sample(3, 30))
    if learner.needs_fit:
        learner.fit()
    assert learner.accuracy(clusters.sample(3, 40), [3] * 40) >= 0.9
    x, y = clusters.labelled(range(3), 20)
    assert learner.accuracy(x, y) >= 0.9


@pytest.mark.parametrize("method", ["auto", "imprinting"])
def test_class_added_after_fit_is_predicted_before_refit(method):
    clusters = Clusters(4, seed=8)
    learner = taught(method, clusters, range(3))
    learner.fit()
    learner.add(3, clusters.sample(3, 30))
    assert learner.accuracy(clusters.sample(3, 40), [3] * 40) >= 0.9


def test_auto_needs_fit_after_a_class_is_added():
    clusters = Clusters(4, seed=9)
    learner = taught("auto", clusters, range(3))
    learner.fit()
    learner.add(3, clusters.sample(3, 10))
    assert learner.needs_fit


def test_backprop_gives_class_added_after_fit_probability_zero_until_refit():
    clusters = Clusters(4, seed=10)
    learner = taught("backprop", clusters, range(3))
    learner.fit()
    learner.add(3, clusters.sample(3, 30))
    assert learner.needs_fit
    probs = learner.predict(clusters.sample(3, 10)).probs
    assert np.all(probs[:, learner.classes.index(3)] == 0.0)


@all_methods
def test_class_id_removed_and_added_again_learns_its_new_examples(method):
    clusters = Clusters(4, seed=11)
    learner = taught(method, clusters, range(3))
    learner.fit()
    learner.remove_class(0)
    learner.add(0, clusters.sample(3, 30))  # the id comes back, taught another cluster
    if learner.needs_fit:
        learner.fit()
    assert learner.accuracy(clusters.sample(3, 40), [0] * 40) >= 0.9


# ----- removing ---------------------------------------------------------------------------
@all_methods
def test_remove_class_drops_it_from_classes_and_predictions(method):
    clusters = Clusters(3, seed=12)
    learner = taught(method, clusters, range(3))
    learner.fit()
    learner.remove_class(1)
    learner.fit()
    assert learner.classes == [0, 2]
    assert learner.counts() == {0: 30, 2: 30}
    pred = learner.predict(clusters.sample(1, 20))
    assert pred.class_ids == (0, 2)
    assert pred.probs.shape == (20, 2)


@all_methods
def test_clear_class_keeps_it_with_probability_zero(method):
    clusters = Clusters(3, seed=13)
    learner = taught(method, clusters, range(3))
    learner.fit()
    learner.clear_class(1)
    learner.fit()
    assert learner.classes == [0, 1, 2]
    assert learner.counts()[1] == 0
    assert len(learner.example_ids(1)) == 0
    pred = learner.predict(clusters.sample(1, 20))
    assert np.all(pred.probs[:, 1] == 0.0)
    assert 1 not in predicted(learner, clusters.sample(1, 20))


def test_clear_class_of_an_unknown_id_lets_that_id_be_added_later():
    clusters = Clusters(2, seed=14)
    learner = taught("imprinting", clusters, [0])
    learner.clear_class(7)
    learner.add(7, clusters.sample(1, 10))
    assert 7 in learner.classes
    assert learner.counts()[7] == 10


@all_methods
def test_remove_returns_how_many_examples_it_removed(method):
    clusters = Clusters(2, seed=15)
    learner = make_learner(method)
    ids_a = learner.add(0, clusters.sample(0, 5))
    ids_b = learner.add(1, clusters.sample(1, 5))
    assert learner.remove([ids_a[0], ids_b[1], ids_b[2]]) == 3
    assert learner.remove([ids_a[0]]) == 0  # already gone
    assert learner.remove([10_000]) == 0
    assert learner.counts() == {0: 4, 1: 3}
    assert set(learner.example_ids(1)) == set(ids_b) - {ids_b[1], ids_b[2]}


def test_remove_on_an_empty_learner_returns_zero():
    assert make_learner("imprinting").remove([1, 2]) == 0


def test_explicit_ids_are_kept_and_new_ids_do_not_collide():
    learner = make_learner("knn")
    clusters = Clusters(1, seed=16)
    assert list(learner.add(0, clusters.sample(0, 2), ids=[40, 41])) == [40, 41]
    fresh = learner.add(0, clusters.sample(0, 2))
    assert min(fresh) > 41


# ----- classes without examples -----------------------------------------------------------
@all_methods
def test_class_without_examples_is_never_top(method):
    clusters = Clusters(3, seed=17)
    learner = make_learner(method)
    learner.add_class(9)
    for c in range(2):
        learner.add(c, clusters.sample(c, 20))
    learner.fit()
    x = np.concatenate([clusters.sample(c, 20) for c in range(3)])
    pred = learner.predict(x)
    column = learner.classes.index(9)
    assert np.all(pred.top != column)
    assert np.all(pred.probs[:, column] == 0.0)


@all_methods
def test_learner_without_examples_predicts_no_class(method):
    learner = make_learner(method, dim=D)
    learner.add_class(0)
    learner.add_class(1)
    pred = learner.predict(Clusters(1, seed=18).sample(0, 4))
    assert np.all(pred.top == -1)
    assert pred.top_class(0) is None
    assert pred.probs.shape == (4, 2)
    assert np.all(pred.probs == 0.0)


@all_methods
def test_fit_without_examples_reports_nothing_done(method):
    report = make_learner(method, dim=D).fit()
    assert report.iterations == 0


# ----- persistence ------------------------------------------------------------------------
@all_methods
def test_state_round_trip_predicts_the_same(method):
    clusters = Clusters(4, seed=19)
    learner = taught(method, clusters, range(3))
    learner.fit()
    copy = make_learner(method)
    copy.load_state(learner.state())
    x = np.concatenate([clusters.sample(c, 10) for c in range(4)])
    before, after = learner.predict(x), copy.predict(x)
    assert after.class_ids == before.class_ids
    np.testing.assert_allclose(after.probs, before.probs, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(after.unknown, before.unknown)
    assert copy.needs_fit == learner.needs_fit


@all_methods
def test_state_survives_npz_file(method, tmp_path):
    clusters = Clusters(3, seed=20)
    learner = taught(method, clusters, range(3))
    learner.fit()
    np.savez(tmp_path / "state.npz", **learner.state())
    copy = make_learner(method)
    with np.load(tmp_path / "state.npz") as saved:
        copy.load_state(dict(saved))
    x = clusters.sample(2, 10)
    np.testing.assert_allclose(copy.predict(x).probs, learner.predict(x).probs, rtol=1e-6)
    assert copy.counts() == learner.counts()


@all_methods
def test_state_round_trip_after_an_untrained_change_predicts_the_same(method):
    clusters = Clusters(5, seed=21)
    learner = taught(method, clusters, range(3))
    learner.fit()
    learner.add(1, clusters.sample(4, 30))  # taught since the fit
    copy = make_learner(method)
    copy.load_state(learner.state())
    x = clusters.sample(4, 20)
    np.testing.assert_allclose(
        copy.predict(x).probs, learner.predict(x).probs, rtol=1e-6, atol=1e-7
    )
    assert copy.needs_fit == learner.needs_fit


# ----- the unknown verdict ----------------------------------------------------------------
@all_methods
def test_unknown_flags_untaught_cluster_but_not_taught_ones(method):
    clusters = Clusters(5, seed=22)
    learner = taught(method, clusters, range(4), n=200)
    learner.fit()
    x, _ = clusters.labelled(range(4), 100)
    assert learner.predict(x).unknown.mean() <= 0.10
    assert learner.predict(clusters.sample(4, 200)).unknown.mean() >= 0.90


def test_unknown_verdict_can_be_switched_off():
    clusters = Clusters(3, seed=23)
    learner = taught("imprinting", clusters, range(2), unknown_quantile=None)
    assert not learner.predict(clusters.sample(2, 20)).unknown.any()


def test_changing_the_unknown_quantile_changes_the_verdict_at_once():
    clusters = Clusters(3, seed=23)
    learner = taught("imprinting", clusters, range(2))
    untaught = clusters.sample(2, 20)
    assert learner.predict(untaught).unknown.all()  # the thresholds are computed now
    learner.set_unknown_quantile(None)
    assert not learner.predict(untaught).unknown.any()
    with pytest.raises(ValueError, match=r"unknown_quantile must be in \[0, 1\)"):
        learner.set_unknown_quantile(1.0)
    assert learner.unknown_quantile is None


# ----- nearest and knn --------------------------------------------------------------------
def test_nearest_returns_ids_of_that_class_nearest_first():
    clusters = Clusters(2, seed=24)
    learner = make_learner("imprinting")
    x0 = clusters.sample(0, 10)
    ids0 = learner.add(0, x0)
    learner.add(1, clusters.sample(1, 10))
    query = clusters.sample(0, 1)[0]
    sims = (x0 / np.linalg.norm(x0, axis=1, keepdims=True)) @ (query / np.linalg.norm(query))
    expected = [int(i) for i in ids0[np.argsort(-sims)[:4]]]
    assert learner.nearest(query, 0, k=4) == expected


def test_nearest_ignores_closer_examples_of_other_classes():
    clusters = Clusters(2, seed=25)
    learner = make_learner("knn")
    ids0 = learner.add(0, clusters.sample(0, 5))
    learner.add(1, clusters.sample(1, 5))
    got = learner.nearest(clusters.sample(1, 1)[0], 0, k=3)
    assert len(got) == 3
    assert set(got) <= set(ids0)


def test_nearest_of_a_class_without_examples_is_empty():
    learner = make_learner("knn", dim=D)
    assert learner.nearest(np.ones(D), 0) == []
    learner.add(1, np.ones((2, D)))
    assert learner.nearest(np.ones(D), 0) == []


def test_knn_with_k1_is_nearest_neighbour_classification():
    clusters = Clusters(3, seed=26, separation=0.4)  # overlapping, so mistakes happen
    x, y = clusters.labelled(range(3), 15)
    learner = KnnLearner(k=1)
    for c in range(3):
        learner.add(c, x[y == c])
    queries = np.concatenate([clusters.sample(c, 20) for c in range(3)])
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ unit.T
    expected = y[np.argmax(sims, axis=1)]
    np.testing.assert_array_equal(predicted(learner, queries), expected)


@pytest.mark.parametrize("k", [1, 3, 5, 100])
def test_knn_probabilities_sum_to_one(k):
    clusters = Clusters(3, seed=27, separation=0.4)
    learner = taught("knn", clusters, range(3), n=10, k=k)
    probs = learner.predict(np.concatenate([clusters.sample(c, 10) for c in range(3)])).probs
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert np.all(probs >= 0.0)


def test_knn_probabilities_are_vote_shares():
    learner = KnnLearner(k=4)
    learner.add(0, np.eye(D)[[0, 0, 0]] + 0.01)
    learner.add(1, np.eye(D)[[1, 1]] + 0.01)
    probs = learner.predict(np.eye(D)[0] + 0.01).probs[0]
    np.testing.assert_allclose(probs, [0.75, 0.25], atol=1e-3)  # 3 of 4 neighbours are class 0


# ----- bad input --------------------------------------------------------------------------
@all_methods
def test_add_with_wrong_embedding_size_raises(method):
    learner = make_learner(method, dim=D)
    with pytest.raises(ValueError, match=r"expected embeddings of size 64, got shape \(2, 63\)"):
        learner.add(0, np.zeros((2, D - 1)))


@all_methods
def test_predict_with_wrong_embedding_size_raises(method):
    learner = taught(method, Clusters(2, seed=28), range(2))
    with pytest.raises(ValueError, match="expected embeddings of size 64"):
        learner.predict(np.zeros(D + 1))


@all_methods
def test_add_with_nan_raises_and_leaves_learner_unchanged(method):
    learner = make_learner(method, dim=D)
    x = np.ones((3, D))
    x[1, 5] = np.nan
    with pytest.raises(ValueError, match="finite"):
        learner.add(0, x)
    assert learner.counts() == {}


def test_add_with_one_id_per_embedding_mismatch_raises():
    with pytest.raises(ValueError, match="one id per embedding"):
        make_learner("knn").add(0, np.ones((3, D)), ids=[1, 2])


def test_make_learner_with_unknown_method_raises():
    with pytest.raises(ValueError, match=r"unknown method 'svm': use one of auto, imprinting"):
        make_learner("svm")


@pytest.mark.parametrize("quantile", [-0.1, 1.0])
def test_unknown_quantile_out_of_range_raises(quantile):
    with pytest.raises(ValueError, match=r"unknown_quantile must be in \[0, 1\)"):
        make_learner("imprinting", unknown_quantile=quantile)


def test_knn_with_k_below_one_raises():
    with pytest.raises(ValueError, match="k must be at least 1"):
        KnnLearner(k=0)
