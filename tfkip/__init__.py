"""tfkip: dataset distillation by Kernel Inducing Points (KIP) and Label Solve.

Subpackages, bottom to top (each imports only those above it in this list):

* :mod:`tfkip.files`, :mod:`tfkip.checks`, :mod:`tfkip.runtime` -- paths and atomic
  writes, argument validators, process policy (XLA flags, progress, one-line errors).
* :mod:`tfkip.kernels` -- analytic NNGP/NTK kernels of infinite networks.
* :mod:`tfkip.architectures` -- the named networks of the KIP papers.
* :mod:`tfkip.finite` -- finite Keras networks from the same architecture spec.
* :mod:`tfkip.data` -- datasets, preprocessing, class-balanced sampling.
* :mod:`tfkip.kip` -- kernel ridge regression, the KIP loss, Label Solve, KIPModel.
* :mod:`tfkip.viz`, :mod:`tfkip.sets` -- image grids; formats, reading and export of sets.
* :mod:`tfkip.train` -- strategies, the distributed loop, checkpoints, workdirs.
* :mod:`tfkip.transfer` -- training finite networks on distilled sets.
* :mod:`tfkip.evaluate` -- the KRR test accuracy of any distilled set.

``import tfkip`` has no side effects; launch scripts apply the XLA settings
(`tfkip.runtime.configure_xla`).
"""

__version__ = "0.1.0"
