"""`KIPModel(kernel='rf_nngp')`: the random-feature KIP loss, keyed by the step, the Platt
loss with its learned temperature, the float64 solve, and Keras ``fit``."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfkip import architectures
from tfkip.kernels.random_features import RandomFeatureNNGP
from tfkip.kip import KIPAdam, KIPModel, krr
from tfkip.kip.model import EVAL_STEP


def _data(seed=0):
    rng = np.random.default_rng(seed)
    xs, xt = rng.standard_normal((4, 6, 6, 1)), rng.standard_normal((8, 6, 6, 1))
    ys = np.eye(2)[[0, 1, 0, 1]] - 0.5
    yt = np.eye(2)[[0, 1] * 4] - 0.5
    return xs, ys, xt, yt


def _model(**kw):
    xs, ys, _, _ = _data()
    options = dict(kernel="rf_nngp", rf_models=2, rf_width=8, rf_seed=1, dtype="float64")
    options.update(kw)
    return KIPModel(architectures.get("conv", 1, num_classes=2), xs, ys, **options)


def test_loss_is_krr_on_the_random_features_of_the_step():
    model = _model(reg=1e-3)
    xs, ys, xt, yt = _data()
    rf = RandomFeatureNNGP(model.network, 2, 8, seed=1)
    k_ss, k_ts = rf.kernel(xs, None, 5), rf.kernel(xt, xs, 5)
    expected, _ = krr.mse_and_accuracy(krr.krr_predict(k_ss, k_ts, ys, 1e-3), yt)
    loss, _ = model.kip_loss(xt, yt, step=5)
    np.testing.assert_allclose(loss.numpy(), expected.numpy(), rtol=1e-12)
    assert abs(model.kip_loss(xt, yt, step=6)[0].numpy() - loss.numpy()) > 1e-6
    # Evaluation uses the fixed twins of EVAL_STEP.
    pred = model.predict_with(xt)
    k_ss, k_ts = rf.kernel(xs, None, EVAL_STEP), rf.kernel(xt, xs, EVAL_STEP)
    np.testing.assert_allclose(pred.numpy(), krr.krr_predict(k_ss, k_ts, ys, 1e-3), rtol=1e-10)


def test_platt_loss_learns_its_temperature_and_float64_solve():
    model = _model(loss="platt", dtype="float32", solve_dtype="float64", learn_labels=True)
    names = sorted(v.name for v in model.trainable_variables)
    assert names == ["log_temperature", "support_images", "support_labels"]
    _, _, xt, yt = _data()
    loss, acc, grads = model.kip_gradients(xt, yt, step=0)
    assert loss.dtype == tf.float32 and acc.dtype == tf.float32
    assert all(g is not None and np.all(np.isfinite(g.numpy())) for g in grads)
    pred = model.predict_with(xt)
    logits = pred * np.exp(0.0)
    labels = np.argmax(yt, -1)
    logp = logits - tf.reduce_logsumexp(logits, -1, keepdims=True)
    expected = -np.mean(logp.numpy()[np.arange(len(labels)), labels])
    loss_eval, _ = model.kip_loss(xt, yt, step=EVAL_STEP)
    np.testing.assert_allclose(loss_eval.numpy(), expected, rtol=1e-5)


def test_keras_fit_keys_the_twins_by_the_optimizer_step():
    model = _model()
    model.compile(optimizer=KIPAdam(0.01))
    _, _, xt, yt = _data()
    before = model.support_images.numpy().copy()
    with keras.utils.custom_object_scope({}):
        model.fit(xt, yt, batch_size=8, epochs=2, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 2
    assert np.abs(model.support_images.numpy() - before).max() > 0
    config = model.get_config()
    assert config["kernel"] == "rf_nngp" and config["rf_models"] == 2
    clone = KIPModel.from_config(config)
    assert clone.random_features.width == 8 and clone.loss_name == "mse"


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(kernel="rf"), "kernel must be one of"),
        (dict(solve_dtype="float16"), "solve_dtype must be None"),
        (dict(loss="hinge"), "loss must be one of"),
        (dict(rf_models=0), "n_models must be a positive integer"),
    ],
)
def test_bad_options(kw, message):
    with pytest.raises(ValueError, match=message):
        _model(**kw)
