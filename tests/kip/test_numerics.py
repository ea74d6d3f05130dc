"""A support kernel that cannot be Cholesky-factorised: the jitter retry or a clear
`NotPositiveDefiniteError`, never a silent NaN."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from kip_testlib import mnist

from tfkip import architectures, train
from tfkip.kip import KIPAdam, KIPModel, NotPositiveDefiniteError, kip_loss, krr
from tfkip.train.loop import KIPTrainer


@pytest.mark.parametrize("jit", [False, True])
def test_jitter_retry_factorises_a_slightly_indefinite_matrix(jit):
    matrix = tf.constant([[1.0, 1.0], [1.0, 1.0 - 1e-6]], tf.float32)  # eigenvalue < 0
    assert not np.all(np.isfinite(tf.linalg.cholesky(matrix).numpy()[np.tril_indices(2)]))
    fn = tf.function(krr.cholesky_with_retry, jit_compile=True) if jit else krr.cholesky_with_retry
    chol = fn(matrix).numpy()
    assert np.all(np.isfinite(np.tril(chol)))
    jitter = krr.JITTER[tf.float32] * 1.0
    np.testing.assert_allclose(
        np.tril(chol) @ np.tril(chol).T, matrix + jitter * np.eye(2), rtol=1e-5
    )


def test_failed_retry_gives_nan_that_check_finite_turns_into_an_error():
    indefinite = tf.constant([[1.0, 2.0], [2.0, 1.0]], tf.float64)
    chol = krr.cholesky_with_retry(indefinite).numpy()
    assert np.isnan(np.tril(chol)).any()
    with pytest.raises(NotPositiveDefiniteError, match=r"step 7.*Increase reg"):
        krr.check_finite(chol, "The KIP loss", 7)


def _duplicated_support(dtype):
    data = mnist(dtype=dtype)
    one = data.x_train[:1]
    images = np.repeat(one, 10, axis=0)  # ten copies of one image: K_ss has rank 1
    labels = data.y_train[np.arange(10) * 0 + 0].copy()
    labels[:] = np.eye(10, dtype=dtype)[np.arange(10)] - 0.1
    return data, images, labels


def test_duplicated_support_reg0_float32_kip_loss_is_finite():
    data, images, labels = _duplicated_support(np.float32)
    net = architectures.get("fc", 1)
    k_ss = net.kernel_fn(images, None, get="ntk")
    # Duplicated support images: K_ss is exactly singular, so with reg=0 the plain solve
    # has no answer (whether float32 Cholesky then shows NaN depends on rounding).
    eigenvalues = np.linalg.eigvalsh(k_ss.numpy().astype(np.float64))
    assert abs(eigenvalues[-2]) <= 1e-4 * eigenvalues[-1]  # rank 1 up to float32 rounding
    loss, acc = kip_loss(
        net.kernel_fn, images, labels, data.x_train[:50], data.y_train[:50], reg=0.0
    )
    assert np.isfinite(float(loss))


def test_duplicated_support_reg0_float32_in_the_loop_never_yields_nan():
    data, images, labels = _duplicated_support(np.float32)
    strategy = train.get_strategy("default")
    model = KIPModel(architectures.get("fc", 1), images, labels, reg=0.0, dtype="float32")
    model.compile(optimizer=KIPAdam(0.04))
    model.optimizer.build(model.trainable_variables)
    trainer = KIPTrainer(model, strategy, data.x_train, data.y_train, data.labels_train, 100, 0)
    try:
        loss, _ = trainer.train(0, 5)
        metrics = trainer.evaluate(data.x_test[:200], data.y_test[:200])
    except NotPositiveDefiniteError as err:
        assert "not finite" in str(err)
        with pytest.raises(NotPositiveDefiniteError):
            model.distilled()
    else:  # the jitter retry succeeded
        assert np.isfinite(loss) and np.isfinite(metrics["test_mse"])
        images, labels = model.distilled()
        assert np.all(np.isfinite(images)) and np.all(np.isfinite(labels))


def test_nan_support_is_caught_before_it_is_saved():
    data = mnist()
    model = KIPModel(architectures.get("fc", 1), data.x_train[:10], data.y_train[:10])
    model.support_images.assign(np.full(model.support_images.shape, np.nan))
    with pytest.raises(NotPositiveDefiniteError, match="support images"):
        model.distilled()
    model.compile(optimizer=KIPAdam(0.04))
    model.optimizer.build(model.trainable_variables)
    trainer = KIPTrainer(
        model, train.get_strategy("default"), data.x_train, data.y_train, data.labels_train, 100, 0
    )
    with pytest.raises(NotPositiveDefiniteError, match="step 2"):
        trainer.train(0, 2)
