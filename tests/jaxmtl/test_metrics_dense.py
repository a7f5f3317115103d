"""Losses and metrics of jaxmtl.metrics on hand-made arrays with hand-computed answers."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmtl import metrics as M


def onehot_logits(pred, c):
    return jnp.asarray(np.eye(c, dtype=np.float32)[np.asarray(pred)] * 10.0)


def test_pixel_cross_entropy_ignores_pixels():
    logits = jnp.zeros((1, 1, 3, 4))                         # uniform: CE = log 4 per pixel
    labels = jnp.array([[[0, -1, 3]]])
    assert float(M.pixel_cross_entropy(logits, labels)) == pytest.approx(math.log(4), rel=1e-6)
    logits = logits.at[0, 0, 0, 0].set(5.0)
    expected = (-(5.0 - math.log(math.exp(5) + 3)) + math.log(4)) / 2
    assert float(M.pixel_cross_entropy(logits, labels)) == pytest.approx(expected, rel=1e-6)
    # an example masked out leaves the mean over the others
    assert float(M.pixel_cross_entropy(jnp.zeros((2, 1, 1, 4)), jnp.array([[[1]], [[2]]]),
                                       jnp.array([True, False]))) == pytest.approx(math.log(4), rel=1e-6)


def test_miou_and_pixel_accuracy():
    truth = np.array([[[0, 0, 1, 1, 2, -1]]])
    pred = np.array([[[0, 1, 1, 1, 0, 2]]])
    logits = onehot_logits(pred, 3)
    # class 0: TP 1, FP 1, FN 1 -> 1/3; class 1: TP 2, FP 1 -> 2/3; class 2: TP 0, FN 1 -> 0
    assert M.mean_iou()(logits, truth) == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)
    assert M.pixel_accuracy()(logits, truth) == pytest.approx(3 / 5)
    cm = np.asarray(M.confusion_matrix(logits, truth))
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 2, 0], [1, 0, 0]])
    # a class absent from truth and prediction is left out of the mean
    assert M.mean_iou()(onehot_logits(np.array([[[0, 1]]]), 4), np.array([[[0, 1]]])) == 1.0


def test_depth_losses_mask_invalid_pixels():
    pred = jnp.array([[1.0, 2.0, 5.0, 7.0]])
    target = jnp.array([[2.0, 2.0, 4.0, 0.0]])            # last pixel invalid (0)
    assert float(M.l1_depth_loss(pred, target)) == pytest.approx((1 + 0 + 1) / 3)
    assert M.abs_error()(pred, target) == pytest.approx(2 / 3)
    assert M.rel_error()(pred, target) == pytest.approx((0.5 + 0 + 0.25) / 3)
    assert float(M.l1_depth_loss(pred[..., None], target)) == pytest.approx(2 / 3)  # (B,H,W,1) prediction
    assert not M.abs_error().higher_is_better and not M.rel_error().higher_is_better


def test_normals():
    target = jnp.array([[[1.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0], [0, 0, 0]]])
    # angles 0, 90 and 45 degrees; the last pixel has no normal
    pred = jnp.array([[[2.0, 0, 0], [0, 0, 3.0], [1.0, 1.0, 0], [1.0, 0, 0]]])
    loss = (0 + 1 + (1 - math.sqrt(0.5))) / 3
    assert float(M.normal_loss(pred, target)) == pytest.approx(loss, rel=1e-5)
    assert M.mean_angle()(pred, target) == pytest.approx(45.0, abs=1e-3)
    assert M.median_angle()(pred, target) == pytest.approx(45.0, abs=M.normals.BIN_DEG)
    assert M.within(11.25)(pred, target) == pytest.approx(1 / 3)
    assert M.within(30)(pred, target) == pytest.approx(1 / 3)
    assert M.within(50)(pred, target) == pytest.approx(2 / 3)
    assert [m.name for m in map(M.within, M.THRESHOLDS)] == ["within_11.25", "within_22.5", "within_30"]
    assert M.within(30).higher_is_better and not M.median_angle().higher_is_better


def test_classification_and_binary():
    logits = jnp.array([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
    labels = jnp.array([0, 0, 0])
    assert M.accuracy()(logits, labels) == pytest.approx(2 / 3)
    assert M.accuracy()(logits, labels, jnp.array([True, False, True])) == 1.0
    b_logits = jnp.array([0.0, 2.0, -1.0, 4.0])
    b_labels = jnp.array([1, 1, 1, 0])
    bce = [math.log(2), math.log1p(math.exp(-2)), math.log1p(math.exp(1)), math.log1p(math.exp(4))]
    assert float(M.binary_cross_entropy(b_logits, b_labels)) == pytest.approx(np.mean(bce), rel=1e-6)
    mask = jnp.array([1, 1, 0, 0], bool)
    assert float(M.binary_cross_entropy(b_logits, b_labels, mask)) == pytest.approx(np.mean(bce[:2]), rel=1e-6)
    # logit 0 predicts 0; so 1 correct of 4
    assert M.binary_accuracy()(b_logits[:, None], b_labels) == pytest.approx(1 / 4)


def test_regression_mae_is_denormalised():
    pred = jnp.array([0.5, -1.0, 0.0])
    target = jnp.array([0.0, 0.0, 2.0])
    assert float(M.squared_error(pred, target)) == pytest.approx((0.25 + 1 + 4) / 3)
    assert M.mae(std=10.0)(pred, target) == pytest.approx(10 * 3.5 / 3)
    with pytest.raises(ValueError, match="std"):
        M.mae(0.0)


@pytest.mark.parametrize("loss, pred, target", [
    (M.pixel_cross_entropy, jnp.ones((2, 2, 2, 3)), jnp.zeros((2, 2, 2), int)),
    (M.l1_depth_loss, jnp.ones((2, 2, 2, 1)), jnp.ones((2, 2, 2, 1))),
    (M.normal_loss, jnp.ones((2, 2, 2, 3)), jnp.ones((2, 2, 2, 3))),
    (M.binary_cross_entropy, jnp.ones((2,)), jnp.ones((2,))),
    (M.cross_entropy, jnp.ones((2, 3)), jnp.zeros((2,), int)),
    (M.squared_error, jnp.ones((2,)), jnp.zeros((2,))),
])
def test_no_labelled_example_gives_zero_loss_and_finite_zero_gradient(loss, pred, target):
    none = jnp.zeros((2,), bool)
    value, grad = jax.value_and_grad(lambda p: loss(p, target, none))(pred)
    assert float(value) == 0.0
    assert np.all(np.asarray(grad) == 0.0)


def test_streaming_stats_sum_over_batches():
    metric = M.mean_iou()
    truth = np.array([[[0, 1]], [[1, 1]]])
    logits = onehot_logits(np.array([[[0, 0]], [[1, 1]]]), 2)
    total = jax.tree.map(lambda a, b: a + b, metric.stats(logits[:1], truth[:1], None),
                         metric.stats(logits[1:], truth[1:], None))
    assert metric.value(total) == pytest.approx(metric(logits, truth))


def test_normal_loss_gradient_is_finite_at_a_zero_prediction():
    pred = jnp.zeros((1, 1, 2, 3)).at[0, 0, 1].set(jnp.array([1.0, 0, 0]))
    grad = jax.grad(lambda p: M.normal_loss(p, jnp.ones((1, 1, 2, 3))))(pred)
    assert np.all(np.isfinite(np.asarray(grad)))
