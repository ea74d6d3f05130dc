"""tfkip: dataset distillation by Kernel Inducing Points (KIP) and Label Solve.

Subpackages:

* :mod:`tfkip.kernels` -- analytic NNGP/NTK kernels of infinite networks.
* :mod:`tfkip.architectures` -- the named networks of the KIP papers.
* :mod:`tfkip.kip` -- kernel ridge regression, the KIP loss, Label Solve, KIPModel.
* :mod:`tfkip.data` -- datasets, preprocessing, class-balanced sampling.
* :mod:`tfkip.train` -- strategies, the distributed loop, checkpoints.
* :mod:`tfkip.finite` -- finite Keras networks from the same architecture spec.
* :mod:`tfkip.export` -- TFRecord / TFDS / npz export of distilled sets.
"""

__version__ = "0.1.0"

from tfkip.xla_defaults import apply_default_xla_flags as _apply_default_xla_flags

_apply_default_xla_flags()  # before any compilation: see tfkip.xla_defaults
