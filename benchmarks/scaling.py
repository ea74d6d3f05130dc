r"""Throughput of the distributed KIP loop: replicas, steps per loop, and its overhead.

  python benchmarks/scaling.py              # the whole table (several minutes on 2 cores)
  python benchmarks/scaling.py --quick      # fewer timed calls

Prints target images per second (global target batch x steps / wall time, after
compilation; the median of ``--repeats`` timed blocks, timed round-robin) for

* FC1 (support 10, target 1000) and Conv depth 2 + Flatten (support 10, target 200), on
  the bundled mnist_5k (28x28x1), in float32 and float64;
* ``plain``: the baseline without any strategy: a ``tf.function`` loop over
  ``tf.range(steps_per_loop)`` that draws the class-balanced target batch in-graph
  (`TargetSampler` + gather) and calls the jit-compiled ``model.kip_gradients`` and
  ``optimizer.apply_gradients``, i.e. the least one can do per step;
* ``loop``: `tfkip.train.loop.KIPTrainer` (the distributed custom training loop of
  ``launch/distill.py``) under the default strategy (1 replica), under
  ``MirroredStrategy`` over 1 logical CPU device, and over 2 logical CPU devices;
* ``steps_per_loop`` 1 and 10 for each.

Each (architecture, dtype, device count) runs in its own subprocess, since logical CPU
devices are configured per process before the first TensorFlow op. ``overhead`` is the
relative throughput loss of the default-strategy loop against ``plain`` at the same
``steps_per_loop``. The machine's cores are shared by both logical devices, so 2 replicas
cannot be faster here than 1; the column shows what the distribution costs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

CASES = {  # name: (architecture, depth, target batch)
    "FC1": ("fc", 1, 1000),
    "Conv2-Flatten": ("conv", 2, 200),
}
DTYPES = ("float32", "float64")
STEPS_PER_LOOP = (1, 10)


def _measure(runners: dict, batch: int, repeats: int, min_steps: int) -> dict[str, float]:
    """Median target images/s of each runner ``(fn(start_step), steps_per_call)``.

    Runners are compiled first, then timed round-robin (one timed block of each in turn,
    ``repeats`` rounds), so that load from other processes on a shared machine affects
    all of them alike; the median block of each is reported.
    """
    state = {}
    for name, (fn, steps) in runners.items():
        fn(0)  # compile
        state[name] = steps
    rates = {name: [] for name in runners}
    for _ in range(repeats):
        for name, (fn, steps) in runners.items():
            calls = max(1, -(-min_steps // steps))
            start = time.perf_counter()
            for _ in range(calls):
                fn(state[name])
                state[name] += steps
            rates[name].append(calls * steps * batch / (time.perf_counter() - start))
    return {name: statistics.median(r) for name, r in rates.items()}


def worker(case: str, dtype: str, devices: int, repeats: int, min_steps: int) -> dict:
    from tfkip.runtime import configure_xla

    configure_xla()  # as the launchers do, before anything compiles
    from tfkip.train import configure_cpu_devices

    configure_cpu_devices(devices)
    import numpy as np
    import tensorflow as tf

    from tfkip import architectures
    from tfkip.data import TargetSampler, class_balanced_indices, prepare
    from tfkip.kip import KIPAdam, KIPModel
    from tfkip.train import get_strategy
    from tfkip.train.loop import KIPTrainer

    arch, depth, batch = CASES[case]
    data = prepare("mnist_5k", dtype=np.float64 if dtype == "float64" else np.float32)
    idx = class_balanced_indices(data.labels_train, 1, 0)
    network = architectures.get(arch, depth)

    def new_model(strategy):
        with strategy.scope():
            model = KIPModel(network, data.x_train[idx], data.y_train[idx], dtype=dtype)
            model.compile(optimizer=KIPAdam(0.04))
            model.optimizer.build(model.trainable_variables)
        return model

    runners = {}
    if devices == 1:
        # The plain single-device baseline: no strategy, no tf.data.
        sampler = TargetSampler(data.labels_train, data.num_classes, batch, 0)
        x_pool, y_pool = tf.constant(data.x_train), tf.constant(data.y_train)
        for spl in STEPS_PER_LOOP:
            model = new_model(tf.distribute.get_strategy())
            grads_fn = tf.function(model.kip_gradients, jit_compile=True)

            @tf.function
            def plain_loop(start, num, model=model, grads_fn=grads_fn):
                total = tf.constant(0.0, dtype)
                for i in tf.range(num):
                    rows = sampler.indices(start + tf.cast(i, tf.int64))
                    loss, _, grads = grads_fn(tf.gather(x_pool, rows), tf.gather(y_pool, rows))
                    model.optimizer.apply_gradients(zip(grads, model.trainable_variables))
                    total += loss
                return total

            def plain(step, spl=spl, plain_loop=plain_loop):
                float(plain_loop(tf.constant(step, tf.int64), tf.constant(spl, tf.int64)))

            runners[f"plain/{spl}"] = (plain, spl)
        strategies = {"default": get_strategy("default"), "mirrored": get_strategy("mirrored")}
    else:
        strategies = {"mirrored": get_strategy("mirrored")}
    for name, strategy in strategies.items():
        for spl in STEPS_PER_LOOP:
            model = new_model(strategy)
            trainer = KIPTrainer(
                model, strategy, data.x_train, data.y_train, data.labels_train, batch, 0
            )

            def loop(step, spl=spl, trainer=trainer):
                trainer.train(step, spl)

            runners[f"{name}-{strategy.num_replicas_in_sync}/{spl}"] = (loop, spl)
    return _measure(runners, batch, repeats, min_steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer timed calls")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated cases")
    parser.add_argument("--dtypes", default=",".join(DTYPES), help="comma-separated dtypes")
    parser.add_argument("--worker", nargs=3, metavar=("CASE", "DTYPE", "DEVICES"))
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    repeats = args.repeats or (5 if args.quick else 11)
    if args.worker:
        case, dtype, devices = args.worker
        min_steps = 40 if case == "FC1" else 10
        if args.quick:
            min_steps //= 2
        out = worker(case, dtype, int(devices), repeats, min_steps)
        print("RESULT " + json.dumps(out), flush=True)
        return

    columns = [
        ("plain", "plain/{}"),
        ("default, 1 replica", "default-1/{}"),
        ("mirrored, 1 device", "mirrored-1/{}"),
        ("mirrored, 2 devices", "mirrored-2/{}"),
    ]
    header = (
        f"{'case':14s} {'dtype':8s} {'spl':>3s} "
        + " ".join(f"{c[0]:>20s}" for c in columns)
        + f" {'overhead':>9s}"
    )
    print("target images per second (median of round-robin timed blocks, after compilation)")
    print(header)
    print("-" * len(header))
    for case in args.cases.split(","):
        for dtype in args.dtypes.split(","):
            results = {}
            for devices in (1, 2):
                cmd = [sys.executable, __file__, "--worker", case, dtype, str(devices)]
                cmd += ["--repeats", str(repeats)] + (["--quick"] if args.quick else [])
                proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
                lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
                if proc.returncode or not lines:
                    sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
                results.update(json.loads(lines[-1][len("RESULT ") :]))
            for spl in STEPS_PER_LOOP:
                row = [results.get(key.format(spl)) for _, key in columns]
                overhead = 1 - row[1] / row[0]
                cells = " ".join(f"{v:20.0f}" if v else f"{'-':>20s}" for v in row)
                print(f"{case:14s} {dtype:8s} {spl:3d} {cells} {overhead:9.1%}", flush=True)


if __name__ == "__main__":
    main()
