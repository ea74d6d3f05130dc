"""KIP and Label Solve: kernel ridge regression, the KIP loss, and the Keras model."""

from tfkip.kip.krr import (
    NotPositiveDefiniteError,
    krr_predict,
    krr_weights,
    mse_and_accuracy,
)
from tfkip.kip.label_solve import label_solve, label_solve_statistics, solve_labels
from tfkip.kip.loss import KERNELS, kip_loss, kip_predict, support_kernel
from tfkip.kip.model import KIPModel
from tfkip.kip.optimizer import KIPAdam

__all__ = [
    "KERNELS",
    "KIPAdam",
    "KIPModel",
    "NotPositiveDefiniteError",
    "kip_loss",
    "kip_predict",
    "krr_predict",
    "krr_weights",
    "label_solve",
    "label_solve_statistics",
    "mse_and_accuracy",
    "solve_labels",
    "support_kernel",
]
