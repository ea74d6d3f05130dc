"""neural-tangents side of the ConvNet K_ts cases of ``benchmarks/kernels.py``.

Runs under the neural-tangents venv (``--nt-python``), never imported by tfkip:

    /tmp/nt-baseline-venv/bin/python benchmarks/nt_convnet_kernel.py --case=convnet_kts28

The paper-2 ConvNet (tfkip ``architectures.get('convnet', 3)``): Conv, Relu, 3 x [Conv,
Relu, AvgPool 2x2/2], Flatten, Dense; every Conv 3x3 'SAME', W_std sqrt(2), b_std 0.1,
'ntk' parameterisation. ``kernel_fn(x_test, x_support, get=('nngp', 'ntk'))`` under
``jax.jit``; one warm-up call, then the median of ``--repeats`` calls. Prints one JSON line.
"""

import argparse
import json
import math
import os
import resource
import statistics
import time

# case: (test images, support images, image shape) -- K_ts is (test, support)
CASES = {
    "convnet_kts28": (100, 10, (28, 28, 1)),
    "convnet_kts32": (100, 10, (32, 32, 3)),
    "convnet_kts28_20": (20, 10, (28, 28, 1)),
    "convnet_kts32_20": (20, 10, (32, 32, 3)),
}


def build():
    from neural_tangents import stax

    kw = dict(W_std=math.sqrt(2.0), b_std=0.1, parameterization="ntk")
    layers = [stax.Conv(128, (3, 3), padding="SAME", **kw), stax.Relu()]
    for _ in range(3):
        layers += [stax.Conv(128, (3, 3), padding="SAME", **kw), stax.Relu()]
        layers += [stax.AvgPool((2, 2), strides=(2, 2), padding="VALID")]
    layers += [stax.Flatten(), stax.Dense(10, **kw)]
    return stax.serial(*layers)[2]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--case", required=True, choices=sorted(CASES))
    parser.add_argument("--repeats", type=int, default=5, help="timed calls after the warm-up")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = parser.parse_args()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax

    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    import numpy as np

    n_t, n_s, shape = CASES[args.case]
    kernel_fn = jax.jit(build(), static_argnames="get")
    x_t = jax.numpy.asarray(np.random.default_rng(1).standard_normal((n_t, *shape)), args.dtype)
    x_s = jax.numpy.asarray(np.random.default_rng(0).standard_normal((n_s, *shape)), args.dtype)
    start = time.perf_counter()
    out = jax.block_until_ready(kernel_fn(x_t, x_s, get=("nngp", "ntk")))
    first = time.perf_counter() - start
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        jax.block_until_ready(kernel_fn(x_t, x_s, get=("nngp", "ntk")))
        times.append(time.perf_counter() - start)
    assert bool(np.isfinite(np.asarray(out.ntk)).all())
    print(
        json.dumps(
            dict(
                case=args.case,
                dtype=args.dtype,
                first_call_s=first,
                median_s=statistics.median(times),
                min_s=min(times),
                repeats=args.repeats,
                out_shape=list(out.ntk.shape),
                self_peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            )
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
