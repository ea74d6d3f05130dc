"""Kernel speed and memory: median seconds of ``kernel_fn`` and peak RSS, per case.

    python benchmarks/kernels.py                    # all cases, float32, 7 repeats
    python benchmarks/kernels.py --case convgap3_32 --dtype float64

Each case runs in its own subprocess (so peak RSS is its own; it includes ~0.58 GB for
importing TensorFlow, reported apart as the "import" column), compiles
``tf.function(network.kernel_fn, jit_compile=True)``, warms up once, then times
``--repeats`` calls (get=('nngp', 'ntk'), x1 != x2, seeded standard normal inputs),
mirroring the neural-tangents baseline in ../shared/tools/nt-baseline/bench.py.
Peak RSS includes ~0.5 GB for importing TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time

CASES = {
    "fc3_784": ("FC depth 3, 784-dim, 1000 x 1000", (1000, 784)),
    "convflat3_28": ("Conv depth 3 + Flatten, 28x28x1, 100 x 100", (100, 28, 28, 1)),
    "convgap3_16": ("ConvNet depth 3 + GlobalAvgPool, 16x16x3, 20 x 20", (20, 16, 16, 3)),
    "convgap3_32": ("ConvNet depth 3 + GlobalAvgPool, 32x32x3, 10 x 10", (10, 32, 32, 3)),
    "myrtle5_32": ("Myrtle5, 32x32x3, 10 x 10", (10, 32, 32, 3)),
    "convnet_32_tiled": (
        "paper-2 ConvNet (pooled), 32x32x3, 40 x 40 in 4x4 tiles",
        (40, 32, 32, 3),
    ),
    "fc3_784_2000_tiled": ("FC depth 3, 784-dim, 2000 x 2000 in 500x500 tiles", (2000, 784)),
}
NT_BASELINE = {  # ../shared/tools/nt-baseline/README.md, same machine type, float32
    "fc3_784": (0.044, 758),
    "convflat3_28": (0.240, 835),
    "convgap3_16": (8.22, 1272),
    "convgap3_32": (35.9, 3143),
    "myrtle5_32": (23.7, 3083),
}


# Pooled kernels are computed one image pair per tile: every covariance of a pair then
# stays a few MB (cache-friendly) and peak memory is that of one pair.
TILES = {
    "convgap3_16": 1,
    "convgap3_32": 1,
    "myrtle5_32": 1,
    "convnet_32_tiled": 4,
    "fc3_784_2000_tiled": 500,
}


def build(name):
    from tfkip import architectures
    from tfkip import kernels as k

    kw = dict(W_std=math.sqrt(2.0), b_std=0.1)
    if name.startswith("fc3"):
        return architectures.get("fc", 3), TILES.get(name)
    if name == "convflat3_28":
        return architectures.get("conv", 3), None
    if name.startswith("convgap3"):
        layers = []
        for _ in range(3):
            layers += [k.Conv(128, (3, 3), padding="SAME", **kw), k.Relu()]
        return k.serial(*layers, k.GlobalAvgPool(), k.Dense(10, **kw)), TILES.get(name)
    if name == "myrtle5_32":
        return architectures.get("myrtle", 5), TILES[name]
    if name == "convnet_32_tiled":
        return architectures.get("convnet", 3), TILES[name]
    raise ValueError(name)


def run_case(name, repeats, dtype):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    network, batch_size = build(name)
    shape = CASES[name][1]
    x1 = tf.constant(np.random.default_rng(0).standard_normal(shape).astype(dtype))
    x2 = tf.constant(np.random.default_rng(1).standard_normal(shape).astype(dtype))
    import_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    fn = tf.function(
        lambda a, b: network.kernel_fn(a, b, ("nngp", "ntk"), batch_size=batch_size),
        jit_compile=True,
    )
    t0 = time.perf_counter()
    out = fn(x1, x2)
    out.ntk.numpy()
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(x1, x2).ntk.numpy()
        times.append(time.perf_counter() - t0)
    assert np.isfinite(out.ntk.numpy()).all()
    return dict(
        case=name,
        dtype=dtype,
        first_call_s=first,
        median_s=statistics.median(times),
        min_s=min(times),
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        import_rss_mb=import_rss,
    )


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--case", choices=sorted(CASES), help="run one case, print JSON")
    parser.add_argument("--repeats", type=int, default=7, help="timed calls after warm-up (>= 5)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.repeats, args.dtype)))
        return
    print(
        "| case | tfkip median (s) | first call (s) | peak RSS (MB) | import (MB) "
        "| NT median (s) | NT RSS (MB) | speed-up |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, (description, _) in CASES.items():
        proc = subprocess.run(
            [
                sys.executable,
                __file__,
                "--case",
                name,
                "--repeats",
                str(args.repeats),
                "--dtype",
                args.dtype,
            ],
            capture_output=True,
            text=True,
        )
        if proc.returncode:
            print(f"| {description} | failed: {proc.stderr.strip().splitlines()[-1]} ||||||")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        nt = NT_BASELINE.get(name)
        nt_cols = f"{nt[0]:.3f} | {nt[1]} | {nt[0] / r['median_s']:.1f}x" if nt else "- | - | -"
        print(
            f"| {description} | {r['median_s']:.3f} | {r['first_call_s']:.2f} | "
            f"{r['peak_rss_mb']:.0f} | {r['import_rss_mb']:.0f} | {nt_cols} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
