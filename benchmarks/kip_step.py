"""Seconds per KIP step (after compilation), many steps per host call.

    python benchmarks/kip_step.py              # all cases, prints a markdown table
    python benchmarks/kip_step.py --loop=50    # steps per host call

For each case: random class-balanced data (10 classes), a `KIPModel` compiled with
Adam(0.04), and the `KIPTrainer` loop on the default strategy (the code path of
launch/distill.py): ``--loop`` steps run inside one tf.function (``tf.range`` loop,
jit-compiled per-step computation). One call warms up (compiles); then the median of
``--repeats`` calls divided by ``--loop`` is reported. Reference (JAX + neural-tangents,
same machine type, from the issue): FC1 support 10: 3.9 ms (float64) / 2.7 ms (float32);
support 100: ~10 ms; Conv2-Flatten support 10 target 200: ~95 ms.
"""

from __future__ import annotations

import argparse
import statistics
import time

import keras
import numpy as np

from tfkip import architectures
from tfkip.kip import KIPModel
from tfkip.train.loop import KIPTrainer

CASES = [
    # name, architecture, depth, support, target, dtype, image shape, reference ms
    ("FC1, support 10, target 1000", "fc", 1, 10, 1000, "float64", (28, 28, 1), 3.9),
    ("FC1, support 10, target 1000", "fc", 1, 10, 1000, "float32", (28, 28, 1), 2.7),
    ("FC1, support 100, target 1000", "fc", 1, 100, 1000, "float64", (28, 28, 1), 10.0),
    ("FC1, support 100, target 1000", "fc", 1, 100, 1000, "float32", (28, 28, 1), None),
    ("Conv2-Flatten, support 10, target 200", "conv", 2, 10, 200, "float32", (28, 28, 1), 95.0),
    ("Conv2-Flatten, support 10, target 200", "conv", 2, 10, 200, "float64", (28, 28, 1), None),
]


def time_case(arch, depth, support, target, dtype, shape, loop, repeats):
    rng = np.random.default_rng(0)
    n = 2000
    labels = np.repeat(np.arange(10), n // 10)
    x = rng.standard_normal((n, *shape)).astype(dtype)
    y = (np.eye(10)[labels] - 0.1).astype(dtype)
    idx = np.concatenate([np.flatnonzero(labels == c)[: support // 10] for c in range(10)])
    model = KIPModel(architectures.get(arch, depth), x[idx], y[idx], dtype=dtype)
    model.compile(optimizer=keras.optimizers.Adam(0.04))
    model.optimizer.build(model.trainable_variables)
    trainer = KIPTrainer(model, model.distribute_strategy, x, y, labels, target, seed=0)
    step = 0
    trainer.train(step, loop)
    step += loop
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        trainer.train(step, loop)
        times.append((time.perf_counter() - start) / loop)
        step += loop
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--loop", type=int, default=50, help="KIP steps per host call")
    parser.add_argument("--repeats", type=int, default=5, help="timed host calls")
    args = parser.parse_args()
    print("| case | dtype | tfkip ms/step | JAX reference ms/step |")
    print("| --- | --- | ---: | ---: |")
    for name, arch, depth, support, target, dtype, shape, ref in CASES:
        seconds = time_case(arch, depth, support, target, dtype, shape, args.loop, args.repeats)
        ref_text = f"{ref:.1f}" if ref else "-"
        print(f"| {name} | {dtype} | {1000 * seconds:.2f} | {ref_text} |", flush=True)


if __name__ == "__main__":
    main()
