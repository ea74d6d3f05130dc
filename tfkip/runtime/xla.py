"""XLA settings for a tfkip process, applied by the launchers (and `configure_xla`).

XLA reads the ``XLA_FLAGS`` environment variable once, at its first compilation in the
process. `configure_xla` adds the flags of `DEFAULT_XLA_FLAGS` that ``XLA_FLAGS`` does not
set already; the launch scripts call it (through `tfkip.runtime.cli.run`) before anything
is compiled, and a library user who wants the same programs calls it first:

>>> from tfkip.runtime import configure_xla
>>> configure_xla()  # doctest: +SKIP
['--xla_cpu_use_fusion_emitters=false']

``import tfkip`` changes nothing: the flags apply to every XLA program of the process,
the user's too, so they are a process policy that the process owner opts into.

* ``--xla_cpu_use_fusion_emitters=false``: XLA's older CPU code generator for fusions.
  The newer one runs each large elementwise fusion of a pooled ConvNet's kernel (its ReLUs
  and their adjoints over the ``(pairs, H, W, H, W)`` covariances) on one thread; the
  older one spreads it over the cores. Results differ in float32 rounding only.

A flag the user sets in ``XLA_FLAGS`` wins. ``TFKIP_KEEP_XLA_FLAGS=1`` leaves
``XLA_FLAGS`` untouched. Flags set after XLA's first compilation in the process come too
late for it.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

DEFAULT_XLA_FLAGS = {"xla_cpu_use_fusion_emitters": "false"}
OPT_OUT = "TFKIP_KEEP_XLA_FLAGS"


def configure_xla(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Appends to ``XLA_FLAGS`` each default flag it does not set; returns those appended.

    Args:
      environ: the environment to change (default ``os.environ``).

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
