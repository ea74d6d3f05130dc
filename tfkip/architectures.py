"""The named networks of the KIP papers, as `tfkip.kernels.serial` specs.

===========  ==========================================================================
name         layers (every Conv is 3x3 'SAME'; every pool 2x2, stride 2, 'VALID')
===========  ==========================================================================
fc           Flatten, depth x [Dense(width), Relu], Dense(num_classes)   (KIP.ipynb "FC")
conv         depth x [Conv(width), Relu], Flatten, Dense    (KIP.ipynb "Conv"; no pooling)
convnet      Conv, Relu, depth x [Conv, Relu, AvgPool], Flatten, Dense  (paper 2 "ConvNet")
convnet3     depth x [Conv, Relu, AvgPool], Flatten, Dense            (paper 2 "ConvNet3")
myrtle       Myrtle 5/7/10: Conv, Relu, blocks of [Conv, Relu] with two AvgPools,
             GlobalAvgPool, Dense                                      (KIP.ipynb "Myrtle")
===========  ==========================================================================

Defaults as in the reference code: ``W_std = sqrt(2)``, ``b_std = 0.1``, 'ntk'
parameterization, ReLU; every default can be overridden. ``width`` only matters under the
'standard' parameterization (and for the finite networks built from the same spec).

>>> from tfkip import architectures
>>> net = architectures.get("fc", depth=1)
>>> [type(layer).__name__ for layer in net.layers]
['Flatten', 'Dense', 'Relu', 'Dense']
"""

from __future__ import annotations

import math

from tfkip.kernels import AvgPool, Conv, Dense, Erf, Flatten, GlobalAvgPool, Network, Relu, serial

DEFAULT_DEPTH = {"fc": 1, "conv": 2, "convnet": 3, "convnet3": 3, "myrtle": 5}
NAMES = tuple(DEFAULT_DEPTH)
MYRTLE_BLOCKS = {5: (1, 1, 1), 7: (1, 2, 2), 10: (2, 3, 3)}
ACTIVATIONS = ("relu", "erf")


def get(
    name: str,
    depth: int | None = None,
    *,
    width: int = 1024,
    num_classes: int = 10,
    W_std: float = math.sqrt(2.0),  # noqa: N803 (neural-tangents argument name)
    b_std: float | None = 0.1,
    parameterization: str = "ntk",
    activation: str = "relu",
    readout: str | None = None,
) -> Network:
    """Builds the preset ``name`` (one of `NAMES`) as a kernel network.

    Args:
      name: 'fc', 'conv', 'convnet', 'convnet3' or 'myrtle'.
      depth: hidden layers (fc, conv), pooling blocks (convnet, convnet3) or the Myrtle
        depth (5, 7 or 10); None for the preset's default (`DEFAULT_DEPTH`).
      width: hidden width / channels. num_classes: readout width.
      W_std, b_std, parameterization: for every Dense and Conv.
      activation: 'relu' or 'erf'.
      readout: 'flatten' or 'gap' for convnet/convnet3 (default 'flatten', as paper 2).
    """
    if name not in DEFAULT_DEPTH:
        raise ValueError(f"Unknown architecture. Expected one of {NAMES}. Received: name={name!r}")
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"activation must be one of {ACTIVATIONS}. Received: activation={activation!r}"
        )
    depth = DEFAULT_DEPTH[name] if depth is None else depth
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < (name != "fc"):
        raise ValueError(
            f"depth must be an integer >= {int(name != 'fc')} for {name!r}. "
            f"Received: depth={depth!r}"
        )
    if readout not in (None, "flatten", "gap"):
        raise ValueError(f"readout must be 'flatten' or 'gap'. Received: readout={readout!r}")
    if readout is not None and name not in ("convnet", "convnet3"):
        raise ValueError(f"readout only applies to convnet/convnet3. Received: name={name!r}")
    kw = dict(W_std=W_std, b_std=b_std, parameterization=parameterization)

    def act():
        return Relu() if activation == "relu" else Erf()

    def conv():
        return [Conv(width, (3, 3), padding="SAME", **kw), act()]

    def pool():
        return [AvgPool((2, 2), strides=(2, 2), padding="VALID")]

    head = [Dense(num_classes, **kw)]
    if name == "fc":
        layers = [Flatten()]
        for _ in range(depth):
            layers += [Dense(width, **kw), act()]
    elif name == "conv":
        layers = [layer for _ in range(depth) for layer in conv()] + [Flatten()]
    elif name in ("convnet", "convnet3"):
        layers = conv() if name == "convnet" else []
        for _ in range(depth):
            layers += conv() + pool()
        layers += [GlobalAvgPool() if readout == "gap" else Flatten()]
    else:
        if depth not in MYRTLE_BLOCKS:
            raise ValueError(f"Myrtle depth must be 5, 7 or 10. Received: depth={depth!r}")
        blocks = MYRTLE_BLOCKS[depth]
        layers = conv()
        for i, repeats in enumerate(blocks):
            layers += [layer for _ in range(repeats) for layer in conv()]
            if i < len(blocks) - 1:
                layers += pool()
        layers += [GlobalAvgPool()]
    return serial(*layers, *head)
