"""The training wrapper of a finite network: MSE loss, effective-weight L2, step timing.

* `half_mse`: ``0.5 * mean_k (f_k(x) - y_k)^2`` per example (the reference's MSE).
* `L2Regularized`: ``network`` plus the penalty ``0.5 * lambda * sum_l ||s_l theta_l||^2``
  over every trainable variable ``theta_l`` with ``s_l`` its effective-weight scale
  (`tfkip.finite.NTKDense.effective_weights`: ``W_std / sqrt(fan_in)`` for an 'ntk'
  kernel, ``b_std`` for an 'ntk' bias, 1 otherwise). The penalty is therefore the same
  function of the network's *effective* weights under 'ntk' and 'standard'
  parameterization, and equals the reference's ``0.5 * lambda * sum(theta^2)`` under
  'standard'. Frozen variables (the initial copy of a centred network) are not penalised.
"""

from __future__ import annotations

import time

import keras
import tensorflow as tf

from tfkip.finite._affine import AffineMixin

_MWMS = tf.distribute.MultiWorkerMirroredStrategy


@keras.saving.register_keras_serializable(package="tfkip")
def half_mse(y_true, y_pred):
    """``0.5 * mean((y_pred - y_true)^2)`` over the last axis (the reference's MSE)."""
    return 0.5 * keras.ops.mean(keras.ops.square(y_pred - y_true), axis=-1)


def effective_weight_scales(model: keras.Model) -> list[tuple[keras.Variable, float]]:
    """``[(variable, s)]`` for every trainable variable of ``model`` (nested models too).

    ``s * variable`` is the effective weight (see the module docstring); variables that
    belong to no `NTKDense` / `NTKConv` layer get ``s = 1``.
    """
    scales: dict[int, float] = {}
    stack = list(model.layers)
    while stack:
        layer = stack.pop()
        if isinstance(layer, keras.Model):
            stack.extend(layer.layers)
        elif isinstance(layer, AffineMixin) and layer.built:
            for variable, scale in layer.effective_weights():
                scales[id(variable)] = scale
    return [(v, scales.get(id(v), 1.0)) for v in model.trainable_variables]


class L2Regularized(keras.Model):
    """Wraps a network and adds ``0.5 * l2 * sum ||s theta||^2`` over its trainable weights.

    ``s`` is each variable's effective-weight scale (`effective_weight_scales`), so one
    ``l2`` means the same under both parameterizations. The penalty is an `add_loss`
    term: `fit` adds it to the training loss and `evaluate` reports it inside ``loss``;
    the ``raw_loss`` metric is the loss without it. Save ``wrapper.network`` (or its
    `tfkip.finite.plain_keras_model`), not the wrapper.
    """

    def __init__(self, network: keras.Model, l2: float, **kwargs):
        super().__init__(**kwargs)
        self.network = network
        self.l2 = float(l2)

    # Keras 3.15's fit() fails under MultiWorkerMirroredStrategy (keras-team/keras#20585):
    # its symbolic build reduces a data batch across workers, and it reduces the scalar
    # logs with axis=0. The two overrides below only act under that strategy.
    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if iterator is not None and isinstance(strategy, _MWMS):
            local = strategy.experimental_local_results
            for _, _, it in iterator:  # build from one local batch, as Keras does otherwise
                data_batch = tf.nest.map_structure(lambda v: local(v)[0], next(it))
                break
            iterator = None
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def train_step(self, data):
        return self._multi_worker_logs(super().train_step(data))

    def test_step(self, data):
        return self._multi_worker_logs(super().test_step(data))

    def _multi_worker_logs(self, logs):
        if isinstance(self.distribute_strategy, _MWMS):
            return {name: tf.reshape(value, [1]) for name, value in logs.items()}
        return logs

    def penalty(self):
        """``0.5 * l2 * sum_l s_l^2 ||theta_l||^2`` (a scalar tensor; 0 if ``l2 == 0``)."""
        scaled = effective_weight_scales(self.network)  # Python only: runs at trace time
        total = sum((s * s) * keras.ops.sum(keras.ops.square(v)) for v, s in scaled if s != 0.0)
        return 0.5 * self.l2 * total

    def call(self, inputs, training=False):
        outputs = self.network(inputs, training=training)
        if self.l2:
            self.add_loss(self.penalty())
        return outputs


class StepTimer(keras.callbacks.Callback):
    """Wall seconds per training step, excluding the first (compiling) execution."""

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()
        self.first = None  # (time, step) after the first execution

    def on_train_batch_end(self, batch, logs=None):
        if self.first is None:
            self.first = (time.perf_counter(), int(self.model.optimizer.iterations.numpy()))

    def on_train_end(self, logs=None):
        self.end = time.perf_counter()
        self.steps = int(self.model.optimizer.iterations.numpy())

    def seconds_per_step(self) -> float:
        if self.first is not None and self.steps > self.first[1]:
            return (self.end - self.first[0]) / (self.steps - self.first[1])
        return (self.end - self.start) / max(self.steps, 1)
