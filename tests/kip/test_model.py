"""`KIPModel` through the Keras API: fit (steps_per_execution, jit_compile), evaluate,
predict, fixed labels, get_config / from_config."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from kip_testlib import mnist, natural_model

from tfkip import architectures
from tfkip.data import target_dataset
from tfkip.kernels import tiling
from tfkip.kip import KIPAdam, KIPModel, kip_loss, kip_predict


@pytest.fixture(scope="module")
def data():
    return mnist()


@pytest.fixture(scope="module")
def probe(data):
    """A fixed class-balanced batch of 200 training images to measure the KIP loss on."""
    x, y = next(iter(target_dataset(data.x_train, data.y_train, 200, seed=123)))
    return x.numpy(), y.numpy()


def test_fit_with_steps_per_execution_and_jit_reduces_the_loss(data, probe):
    model = natural_model(data, learn_labels=False)
    model.compile(optimizer=KIPAdam(0.04), steps_per_execution=5, jit_compile=True)
    before = float(model.kip_loss(*probe, training=False)[0])
    labels = model.support_labels.numpy().copy()
    batches = target_dataset(data.x_train, data.y_train, 100, seed=0)
    history = model.fit(batches, epochs=2, steps_per_epoch=10, verbose=0, shuffle=False)
    after = float(model.kip_loss(*probe, training=False)[0])

    assert sorted(history.history) == ["accuracy", "loss"]
    assert len(history.history["loss"]) == 2
    assert model.optimizer.iterations.numpy() == 20
    assert after < 0.9 * before, (before, after)
    np.testing.assert_array_equal(model.support_labels.numpy(), labels)  # learn_labels=False


def test_fit_learns_labels_when_asked(data):
    model = natural_model(data, learn_labels=True)
    labels = model.support_labels.numpy().copy()
    model.fit(
        target_dataset(data.x_train, data.y_train, 100, seed=0),
        steps_per_epoch=3,
        shuffle=False,
        verbose=0,
    )
    assert np.max(np.abs(model.support_labels.numpy() - labels)) > 1e-4
    assert [v.name for v in model.trainable_variables] == ["support_images", "support_labels"]


def test_evaluate_reports_krr_accuracy_and_mse(data):
    model = natural_model(data)
    x, y = data.x_test[:300], data.y_test[:300]
    result = model.evaluate(x, y, batch_size=100, verbose=0, return_dict=True)
    net = model.network
    pred = kip_predict(net.kernel_fn, model.support_images, model.support_labels, x).numpy()
    expected_acc = np.mean(np.argmax(pred, 1) == np.argmax(y, 1))
    expected_mse = 0.5 * np.mean((pred - y) ** 2)
    assert {"accuracy", "mse"} <= set(result)
    np.testing.assert_allclose(result["accuracy"], expected_acc, rtol=1e-12)
    np.testing.assert_allclose(result["mse"], expected_mse, rtol=1e-10)


def test_readme_fit_and_evaluate_run_clean(data, capsys):
    """README's snippet: fit on a Dataset without Keras' "shuffle=True ... ignored" warning;
    evaluate after compile(steps_per_execution=50) counts its 3 real batches, not "50/3",
    and gives the same numbers as one batch per execution."""
    import warnings

    model = natural_model(data)
    model.compile(optimizer=KIPAdam(0.04), steps_per_execution=50)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(target_dataset(data.x_train, data.y_train, 100, seed=0), steps_per_epoch=2)
    assert not [w for w in caught if "shuffle" in str(w.message)]
    capsys.readouterr()
    x, y = data.x_test[:300], data.y_test[:300]
    result = model.evaluate(x, y, batch_size=100, return_dict=True)
    bar = capsys.readouterr().out
    assert "3/3" in bar and "50/" not in bar, bar
    assert model.steps_per_execution == 50
    model.compile(optimizer=KIPAdam(0.04), steps_per_execution=1)
    assert model.evaluate(x, y, batch_size=100, return_dict=True, verbose=0) == result


def test_predict_shape_and_values(data):
    model = natural_model(data)
    out = model.predict(data.x_test[:70], batch_size=32, verbose=0)
    assert out.shape == (70, 10)
    pred = kip_predict(
        model.network.kernel_fn, model.support_images, model.support_labels, data.x_test[:70]
    )
    np.testing.assert_allclose(out, pred.numpy(), rtol=1e-10, atol=1e-14)


def test_kip_loss_of_the_model_equals_the_functional_core(data, probe):
    model = natural_model(data)
    loss, acc = model.kip_loss(*probe)
    ref_loss, ref_acc = kip_loss(
        model.network.kernel_fn, model.support_images, model.support_labels, *probe
    )
    assert float(loss) == pytest.approx(float(ref_loss), rel=1e-12)
    assert float(acc) == float(ref_acc)


def test_float32_model(data, probe):
    model = natural_model(mnist(dtype=np.float32), dtype="float32")
    assert model.support_images.dtype == "float32"
    loss, _, grads = model.kip_gradients(*probe)
    assert loss.dtype == tf.float32 and grads[0].dtype == tf.float32
    assert np.isfinite(float(loss))


def test_get_config_round_trip(data):
    model = natural_model(data, learn_labels=True, kernel="nngp", reg=1e-5)
    config = model.get_config()
    clone = KIPModel.from_config(config)
    assert clone.get_config() == config
    np.testing.assert_array_equal(clone.support_images.numpy(), model.support_images.numpy())
    assert clone.learn_labels and clone.kernel == "nngp" and clone.reg == 1e-5
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    assert isinstance(revived, KIPModel)
    np.testing.assert_array_equal(revived.support_labels.numpy(), model.support_labels.numpy())


def test_kernel_memory_budget_tiles_the_kernels_and_keeps_the_loss():
    """A one-byte budget computes K_ss and K_ts in tiles of one pair (plan_tiles); the
    loss and its gradient are those of the untiled kernels, and the budget survives
    get_config."""
    rng = np.random.default_rng(3)
    xs, xt = rng.standard_normal((4, 6, 6, 1)), rng.standard_normal((5, 6, 6, 1))
    ys, yt = np.eye(2)[[0, 1, 0, 1]] - 0.5, np.eye(2)[[0, 1, 0, 1, 0]] - 0.5
    network = architectures.get("convnet", 1)
    results = []
    for budget in (None, 1):
        model = KIPModel(network, xs, ys, kernel_memory_budget=budget)
        assert tiling.plan_tiles(network, tf.constant(xs), None, budget) == (
            None if budget is None else (1, 1)
        )
        with tf.GradientTape() as tape:
            loss, _ = model.kip_loss(tf.constant(xt), tf.constant(yt))
        results.append((loss.numpy(), tape.gradient(loss, model.support_images).numpy()))
        assert KIPModel.from_config(model.get_config()).kernel_memory_budget == budget
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-12)
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=0, atol=1e-12)


@pytest.mark.parametrize("budget", [0, 2.5, True])
def test_bad_kernel_memory_budget_is_named(budget):
    with pytest.raises(ValueError, match=f"memory_budget={budget!r}"):
        KIPModel(
            architectures.get("fc", 1), np.zeros((2, 3)), np.eye(2), kernel_memory_budget=budget
        )
