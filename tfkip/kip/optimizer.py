"""Adam exactly as the KIP reference runs it (``jax.example_libraries.optimizers.adam``).

KIP.ipynb optimises the support set with JAX's Adam, which adds ``eps`` to the square
root of the *bias-corrected* second moment (Kingma & Ba 2015, Algorithm 1)::

    m <- b1 m + (1 - b1) g,        v <- b2 v + (1 - b2) g^2
    m_hat = m / (1 - b1^t),        v_hat = v / (1 - b2^t)
    p <- p - lr * m_hat / (sqrt(v_hat) + eps)                     (t = 1, 2, ...)

Keras' `keras.optimizers.Adam` adds its ``epsilon`` to the *uncorrected* ``sqrt(v)``
("epsilon hat" of the paper's Sec. 2), i.e. an effective ``eps * sqrt(1 - b2^t)`` ...
``eps / sqrt(1 - b2^t)`` in bias-corrected units, 32x the nominal value at t = 1. KIP's
gradients w.r.t. the support pixels are small (about 1e-5 on MNIST), so that difference
changes the first steps by several percent (the fixtures of ``tests/fixtures/kip`` show
it). `KIPAdam` keeps Keras' state (``momentums``, ``velocities``, ``iterations``), so it
checkpoints, distributes and serialises like `keras.optimizers.Adam`; only the update
differs.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfkip")
class KIPAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` with the reference's epsilon placement (module docstring).

    Defaults are JAX's: ``beta_1=0.9``, ``beta_2=0.999``, ``epsilon=1e-8``; the KIP
    learning rate is 0.04.

    >>> opt = KIPAdam(0.04)
    >>> float(opt.epsilon)
    1e-08
    """

    def __init__(
        self,
        learning_rate: float = 0.04,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        name: str = "kip_adam",
        **kwargs,
    ):
        if kwargs.get("amsgrad"):
            raise ValueError("KIPAdam does not support amsgrad. Received: amsgrad=True")
        super().__init__(
            learning_rate=learning_rate,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            name=name,
            **kwargs,
        )

    def update_step(self, gradient, variable, learning_rate):
        """One Adam update of ``variable`` (JAX placement of ``epsilon``)."""
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        step = ops.cast(self.iterations + 1, variable.dtype)
        beta_1 = ops.cast(self.beta_1, variable.dtype)
        beta_2 = ops.cast(self.beta_2, variable.dtype)
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - beta_2))
        m_hat = ops.divide(m, 1 - ops.power(beta_1, step))
        v_hat = ops.divide(v, 1 - ops.power(beta_2, step))
        eps = ops.cast(self.epsilon, variable.dtype)
        self.assign_sub(variable, ops.divide(ops.multiply(m_hat, lr), ops.sqrt(v_hat) + eps))
