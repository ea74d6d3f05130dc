"""Seconds per random-feature KIP step, by compilation (XLA or TensorFlow graph) and dtype.

The step of ``launch/distill.py --kernel=rf_nngp`` (a `KIPModel` with the random-feature
NNGP, the `KIPTrainer` loop on the default strategy, Platt loss, float64 solve), on the
bundled mnist_5k (28x28x1) with a class-balanced support and target batch. Defaults are
RFAD's settings (Loo et al. 2022): its ConvNet (`convnet3`: 3 x [Conv 3x3, ReLU, AvgPool
2x2], no stem), 8 random networks of width 256 per step, 1,280 target images, support 100.

    python benchmarks/rf_step.py                        # RFAD's settings, 4 variants
    python benchmarks/rf_step.py --models=4 --width=32 --target=100 --support=10 \\
        --architecture=convnet --steps=20               # tfkip's RF defaults

Each variant is its own process (one warm-up step that compiles, then ``--steps`` steps
timed one call each; the median is reported), run one after the other; peak RSS is the
process's. FLOP/s counts the twins' convolutions and matmuls only: ``M (|S| + |T|)``
forward passes plus ``2 M |S|`` for the backward over the support (multiply-adds x 2).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import _baseline

VARIANTS = {
    "xla_float32": (True, None),
    "graph_float32": (False, None),
    "xla_bfloat16": (True, "bfloat16"),
    "graph_bfloat16": (False, "bfloat16"),
}


def forward_flops(network, image_shape, width: int) -> float:
    """Multiply-adds x 2 of one twin's forward pass on one image."""
    from tfkip.kernels import Conv, Dense
    from tfkip.kernels.pooling import AvgPool, Flatten, GlobalAvgPool

    h, w, c = image_shape
    flat, flops = None, 0.0
    for layer in network.layers[:-1]:
        if isinstance(layer, Conv):
            fh, fw = layer.filter_shape
            if layer.padding == "VALID":
                h, w = h - fh + 1, w - fw + 1
            flops += 2.0 * h * w * fh * fw * c * width
            c = width
        elif isinstance(layer, AvgPool):
            (ph, pw), (sh, sw) = layer.window_shape, layer.strides
            h, w = (h - ph) // sh + 1, (w - pw) // sw + 1
        elif isinstance(layer, Flatten):
            flat = h * w * c
        elif isinstance(layer, GlobalAvgPool):
            flat = c
        elif isinstance(layer, Dense):
            flops += 2.0 * (flat if flat is not None else h * w * c) * width
            flat = width
    return flops


def time_variant(args) -> dict:
    """One variant in this process; returns the JSON-able result."""
    import keras
    import numpy as np

    from tfkip import architectures
    from tfkip.data import class_balanced_indices, prepare
    from tfkip.kip import KIPModel
    from tfkip.runtime.xla import configure_xla
    from tfkip.train.loop import KIPTrainer

    configure_xla()
    jit, rf_dtype = VARIANTS[args.child]
    data = prepare("mnist_5k", dtype=np.float32)
    network = architectures.get(args.architecture, num_classes=data.num_classes)
    idx = class_balanced_indices(data.labels_train, args.support // data.num_classes, 0)
    model = KIPModel(
        network,
        data.x_train[idx],
        data.y_train[idx],
        kernel="rf_nngp",
        rf_models=args.models,
        rf_width=args.width,
        rf_dtype=rf_dtype,
        loss="platt",
        solve_dtype="float64",
        dtype="float32",
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.optimizer.build(model.trainable_variables)
    trainer = KIPTrainer(
        model,
        model.distribute_strategy,
        data.x_train,
        data.y_train,
        data.labels_train,
        args.target,
        seed=0,
        jit_compile=jit,
    )
    start = time.perf_counter()
    trainer.train(0, 1)
    first = time.perf_counter() - start
    times = []
    for step in range(1, args.steps + 1):
        start = time.perf_counter()
        trainer.train(step, 1)
        times.append(time.perf_counter() - start)
    per_image = forward_flops(network, data.x_train.shape[1:], args.width)
    flops = args.models * per_image * (args.support + args.target + 2 * args.support)
    median = statistics.median(times)
    return dict(
        variant=args.child,
        first_step_s=first,
        median_step_s=median,
        min_step_s=min(times),
        gflops=flops / 1e9,
        gflop_per_s=flops / median / 1e9,
        peak_rss_mb=_baseline.vmhwm_mb(),
    )


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--architecture", default="convnet3", help="architecture preset")
    parser.add_argument("--models", type=int, default=8, help="random networks per step")
    parser.add_argument("--width", type=int, default=256, help="width of every hidden layer")
    parser.add_argument("--support", type=int, default=100, help="support images")
    parser.add_argument("--target", type=int, default=1280, help="target images per step")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant")
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"comma-separated, of {list(VARIANTS)}"
    )
    parser.add_argument("--child", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(time_variant(args)), flush=True)
        return
    rows = []
    for name in args.variants.split(","):
        if name not in VARIANTS:
            parser.error(f"unknown variant {name!r}; expected one of {list(VARIANTS)}")
        cmd = [sys.executable, os.path.abspath(__file__), f"--child={name}"]
        cmd += [f"--{k}={getattr(args, k)}" for k in ("architecture", "models", "width")]
        cmd += [f"--{k}={getattr(args, k)}" for k in ("support", "target", "steps")]
        print(f"running {name} ...", file=sys.stderr, flush=True)
        out = subprocess.run(cmd, capture_output=True, text=True)
        found = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
        if out.returncode or not found:
            rows.append(dict(variant=name, error=out.stderr.strip().splitlines()[-1:]))
            continue
        rows.append(json.loads(found[0][len("RESULT ") :]))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"RF-KIP step: {args.architecture}, {args.models} models x width {args.width}, "
        f"support {args.support}, target {args.target}, mnist_5k 28x28x1, float32 model, "
        f"float64 solve; {os.cpu_count()} CPUs, load average {load}\n"
    )
    print(
        "| variant | s / step (median) | first step (compile) | GFLOP / step | GFLOP/s "
        "| peak RSS MB |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        if "error" in r:
            print(f"| {r['variant']} | failed: {r['error']} | | | | |")
            continue
        print(
            f"| {r['variant']} | {r['median_step_s']:.2f} | {r['first_step_s']:.1f} | "
            f"{r['gflops']:.0f} | {r['gflop_per_s']:.0f} | {r['peak_rss_mb']:.0f} |"
        )


if __name__ == "__main__":
    main()
