"""KRR test accuracy and MSE of any distilled set, in the set's own preprocessing.

``evaluate_distilled(EvaluateConfig(distilled=X, dataset=D))`` loads the set X, maps D's
raw test images into the set's space, and runs kernel ridge regression with the support
set through the same code the distillation evaluates with (`KIPModel` +
`tfkip.train.loop.KIPTrainer.evaluate`), so on a run folder it reproduces the run's own
``metrics.jsonl`` numbers. X is one of

* a distillation workdir (``distilled.npz``, ``config.json``, ``preprocessing.npz``):
  network, kernel, ridge, dtype and the fitted preprocessing are the run's;
* a tfkip export: ``.npz`` with its ``.json`` sidecar, a TFRecord export (its sidecar
  ``{path}.json``), or a TFDS export folder (``DATA_DIR/NAME/VERSION``): preprocessing
  from the metadata (and its ZCA matrix file), network from the run config it carries;
* a published set (:mod:`tfkip.sets.released`), or any ``.npz`` named like one:
  preprocessing rebuilt from the name as nn_training does it (spec §1.4, §4): per-channel
  standardisation with the full train split's statistics, and for ``zca`` names per-image
  layer norm then ZCA with relative regulariser 0.1 fitted on the train split minus its
  last 5,000 images; kernel the NTK of the named architecture (``ConvNet`` ->
  ``convnet``, ``ConvNet3`` -> ``convnet3``, depth 3; old-layout names need
  ``architecture``); trace-scaled ridge 1e-6.

With ``which="best"`` a run folder's ``best/`` (the set of lowest validation loss,
itself laid out like a run folder: `tfkip.train.validation`) is evaluated instead of its
final set. The kernel is always an exact infinite-width one: a run distilled with a
random-feature estimate (``rf_nngp``) is evaluated with the kernel it estimates
(`exact_kernel`), unless ``kernel`` says otherwise.

Test labels are centred one-hot (``1 - 1/C``, ``-1/C``); ``test_mse`` is
``0.5 * mean((prediction - label)^2)`` over examples and classes.

>>> result = evaluate_distilled(EvaluateConfig("runs/quickstart"))  # doctest: +SKIP
>>> result["test_accuracy"], result["reported"]["test_accuracy"]  # doctest: +SKIP
(0.875, 0.875)
"""

from tfkip.evaluate.config import (
    KERNELS,
    NETWORK_FIELDS,
    PREPROCESSINGS,
    WHICH,
    ZCA_FITS,
    EvaluateConfig,
    exact_kernel,
)
from tfkip.evaluate.evaluator import Evaluator, evaluate_distilled, prepare_evaluator
from tfkip.evaluate.source import best_folder, load_source

__all__ = [
    "KERNELS",
    "NETWORK_FIELDS",
    "PREPROCESSINGS",
    "WHICH",
    "ZCA_FITS",
    "EvaluateConfig",
    "Evaluator",
    "best_folder",
    "evaluate_distilled",
    "exact_kernel",
    "load_source",
    "prepare_evaluator",
]
