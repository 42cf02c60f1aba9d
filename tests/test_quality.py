"""Leave-one-out quality report on seeded synthetic clusters and on real digit embeddings."""

import numpy as np
import pytest

from server.learn.quality import cross_validate, needs_examples_most


def clusters(rng, centres, per_class, spread):
    x = np.concatenate([c + spread * rng.standard_normal((per_class, c.size)) for c in centres])
    return x.astype(np.float32), np.repeat(np.arange(len(centres)) + 1, per_class)


def test_separate_classes_score_perfectly_and_have_no_confusions():
    rng = np.random.default_rng(0)
    x, y = clusters(rng, rng.standard_normal((3, 64)) * 5, 20, 0.3)
    report = cross_validate(x, y, [1, 2, 3])
    assert [q.accuracy for q in report.classes] == [1.0, 1.0, 1.0]
    assert all(q.confused_with == () for q in report.classes)
    np.testing.assert_array_equal(report.matrix, np.diag([20, 20, 20]))


def test_two_look_alike_classes_are_named_as_confused_with_each_other():
    rng = np.random.default_rng(1)
    a, c = rng.standard_normal(64) * 5, rng.standard_normal(64) * 5
    x, y = clusters(rng, [a, a + 0.05 * rng.standard_normal(64), c], 30, 1.0)
    report = cross_validate(x, y, [1, 2, 3])
    one, two, three = report.classes
    assert three.accuracy == 1.0 and three.confused_with == ()
    assert one.accuracy < 0.8 and one.confused_with[0][0] == 2
    assert two.accuracy < 0.8 and two.confused_with[0][0] == 1
    assert report.matrix.sum() == 90
    assert needs_examples_most(report) in (1, 2)


def test_leave_one_out_never_sees_the_example_itself():
    # two classes of one example each plus noise: with itself in its mean, every example
    # would be "right"; without it, a singleton class cannot be judged at all
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 16)).astype(np.float32)
    report = cross_validate(x, np.array([1, 1, 2, 3]), [1, 2, 3])
    assert [q.accuracy is None for q in report.classes] == [False, True, True]
    assert report.matrix[1:].sum() == 0
    assert needs_examples_most(report) in (2, 3)  # cannot be judged yet: teach them first


def test_a_class_without_examples_is_reported_and_never_predicted():
    rng = np.random.default_rng(3)
    x, y = clusters(rng, rng.standard_normal((2, 32)) * 5, 5, 0.5)
    report = cross_validate(x, y, [1, 2, 9])
    assert report.classes[2].examples == 0 and report.classes[2].accuracy is None
    assert report.matrix[:, 2].sum() == 0


def test_next_class_to_teach_is_the_weakest_then_the_smallest():
    rng = np.random.default_rng(4)
    x, y = clusters(rng, rng.standard_normal((2, 32)) * 5, 10, 0.2)
    x = np.concatenate([x, x[y == 1][:4]])
    y = np.concatenate([y, np.full(4, 1)])
    report = cross_validate(x, y, [1, 2])
    assert [q.accuracy for q in report.classes] == [1.0, 1.0]
    assert needs_examples_most(report) == 2  # both perfect: the one with fewer examples


def test_empty_and_single_class_inputs_give_an_empty_verdict():
    assert cross_validate(np.zeros((0, 8), np.float32), np.zeros(0), []).classes == ()
    report = cross_validate(np.ones((3, 8), np.float32), np.ones(3), [1])
    assert report.classes[0].accuracy is None and needs_examples_most(report) is None


@pytest.mark.parametrize("per_class", [5, 20])
def test_digits_quality_is_in_line_with_held_out_accuracy(extractor, digits_dir, per_class):
    from PIL import Image

    xs, ys = [], []
    for digit in range(10):
        for path in sorted((digits_dir / str(digit)).iterdir())[:per_class]:
            xs.append(extractor.embed(Image.open(path).convert("RGB")))
            ys.append(digit)
    report = cross_validate(np.stack(xs), np.array(ys), list(range(10)))
    mean = float(np.mean([q.accuracy for q in report.classes]))
    assert 0.5 < mean < 1.0  # imprinting's held-out accuracy is 0.73 (5) to 0.84 (all)
    assert any(q.confused_with for q in report.classes)
