"""XLA settings that tfkip gives its process at import, before anything is compiled.

XLA reads the ``XLA_FLAGS`` environment variable once, at its first compilation in the
process. ``import tfkip`` (which imports no TensorFlow) adds the flags of
`DEFAULT_XLA_FLAGS` that ``XLA_FLAGS`` does not set already, so they apply to every XLA
program of the process, tfkip's and the user's alike:

* ``--xla_cpu_use_fusion_emitters=false``: XLA's older CPU code generator for fusions.
  With the newer one (TensorFlow 2.21's default) every large elementwise fusion of a
  pooled ConvNet's kernel, its ReLUs and their adjoints over the (pairs, H, W, H, W)
  covariances, runs on one thread: a profiled 32x32 ConvNet KIP step spent 12.5
  thread-seconds of kernels in 12.7 s, one core's worth. Back to back, the older
  generator took that step from 14.8-16.4 s to 10.1-11.7 s and a 16x16 step from
  0.46-0.62 s to 0.39-0.40 s; float32 results differ in rounding only (the whole test
  suite, float64 fixtures at 1e-14 included, passes either way).

A flag the user sets in ``XLA_FLAGS`` wins. ``TFKIP_KEEP_XLA_FLAGS=1`` leaves
``XLA_FLAGS`` untouched. If XLA compiled something before ``import tfkip``, the flags
come too late for that process: import tfkip first.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

DEFAULT_XLA_FLAGS = {"xla_cpu_use_fusion_emitters": "false"}
OPT_OUT = "TFKIP_KEEP_XLA_FLAGS"


def apply_default_xla_flags(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Appends to ``XLA_FLAGS`` each default flag it does not set; returns those appended.

    Nothing is changed when ``environ[OPT_OUT]`` is set to anything but ``""``/``"0"``.
    """
    environ = os.environ if environ is None else environ
    if environ.get(OPT_OUT, "") not in ("", "0"):
        return []
    current = environ.get("XLA_FLAGS", "")
    given = {token.lstrip("-").split("=", 1)[0] for token in current.split()}
    added = [f"--{name}={value}" for name, value in DEFAULT_XLA_FLAGS.items() if name not in given]
    if added:
        environ["XLA_FLAGS"] = " ".join([current.strip(), *added]).strip()
    return added
