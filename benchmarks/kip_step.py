"""Seconds per KIP step and peak memory, tfkip beside neural-tangents, interleaved.

    # side by side, the five cases of issue 9 (~35 min on an idle 2-core machine, the two
    # big ConvNets most of it; on a shared machine several times that, and the default
    # ConvNet 32x32 / 28x28 steps need more memory than --max-rss-mb may allow, see below):
    python benchmarks/kip_step.py --nt-python=/tmp/nt-baseline-venv/bin/python
    # quick: FC1, Conv2-Flatten and ConvNet 16x16x3, fewer steps, one round (~4 min idle):
    python benchmarks/kip_step.py --nt-python=/tmp/nt-baseline-venv/bin/python --quick
    # one case with the fewest steps (warm-up + 1 timed step per side; ~6 min idle):
    python benchmarks/kip_step.py --nt-python=/tmp/nt-baseline-venv/bin/python \\
        --cases=convnet_32 --repeats=1 --nt-steps=1
    # tfkip alone (no neural-tangents venv needed), here with kernel tiles of 1 image:
    python benchmarks/kip_step.py --cases=convnet_32 --repeats=1 --kernel-batch-size=1
    # the table again from the stderr of earlier runs (e.g. of different --cases):
    python benchmarks/kip_step.py --from-log run1.err run2.err

tfkip side: random class-balanced data (10 classes, a pool of 2000 images), a `KIPModel`
with default settings (NTK kernel, reg 1e-6, no kernel tiles) compiled with Adam(0.04),
and the `KIPTrainer` loop on the default strategy (the code path of launch/distill.py):
``--loop`` steps run inside one tf.function. One call of one step warms up (compiles);
the reported figure is the median of ``--repeats`` calls, each divided by ``--loop``.

neural-tangents side: ``NT_SCRIPTS/kip_step.py ARCH SUPPORT TARGET DTYPE H W C STEPS`` run
with ``--nt-python`` (JAX + neural-tangents 0.6.5, one ``jax.jit`` per step: kernels,
solve, gradient w.r.t. the support images, Adam); its figure is the median of the STEPS
steps after the first (compiling) one.

Every measurement is its own process; peak RSS is that process's ``ru_maxrss`` (from
``os.wait4``), including ~0.6 GB for importing TensorFlow (and JAX on the NT side). With
``--nt-python`` each case runs tfkip and NT alternately for ``--rounds`` rounds (the
order flips every round), so both see the same machine load; the ratio is tfkip / NT
seconds per step, the median of the per-round ratios (range in brackets). Progress and
raw per-process results go to stderr as JSON lines; the table goes to stdout. A process
whose RSS passes ``--max-rss-mb`` is killed and its cell reads "failed (killed: ...)".
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import _baseline

# name: description, tfkip (architecture, depth), NT ARCH, support, target, dtype, image
CASES = {
    "fc1_f64": ("FC1, float64, 28x28x1, support 10, target 1000",
                ("fc", 1), "fc1", 10, 1000, "float64", (28, 28, 1)),
    "conv2flat": ("Conv2-Flatten, float32, 28x28x1, support 10, target 200",
                  ("conv", 2), "conv2flat", 10, 200, "float32", (28, 28, 1)),
    "convnet_16": ("ConvNet (convnet, 3), float32, 16x16x3, support 10, target 10",
                   ("convnet", 3), "convnet", 10, 10, "float32", (16, 16, 3)),
    "convnet_32": ("ConvNet (convnet, 3), float32, 32x32x3, support 10, target 10",
                   ("convnet", 3), "convnet", 10, 10, "float32", (32, 32, 3)),
    "convnet_28": ("ConvNet (convnet, 3), float32, 28x28x1, support 10, target 100",
                   ("convnet", 3), "convnet", 10, 100, "float32", (28, 28, 1)),
    # extras (run with --cases=all or by name)
    "fc1_f32": ("FC1, float32, 28x28x1, support 10, target 1000",
                ("fc", 1), "fc1", 10, 1000, "float32", (28, 28, 1)),
    "fc1_s100_f64": ("FC1, float64, 28x28x1, support 100, target 1000",
                     ("fc", 1), "fc1", 100, 1000, "float64", (28, 28, 1)),
    "fc1_s100_f32": ("FC1, float32, 28x28x1, support 100, target 1000",
                     ("fc", 1), "fc1", 100, 1000, "float32", (28, 28, 1)),
    "conv2flat_f64": ("Conv2-Flatten, float64, 28x28x1, support 10, target 200",
                      ("conv", 2), "conv2flat", 10, 200, "float64", (28, 28, 1)),
    # large supports (issue 27): tiles planned from the memory budget; slow
    "convnet_28_s100": ("ConvNet (convnet, 3), float32, 28x28x1, support 100, target 100",
                        ("convnet", 3), "convnet", 100, 100, "float32", (28, 28, 1)),
    "convnet_32_s100": ("ConvNet (convnet, 3), float32, 32x32x3, support 100, target 50",
                        ("convnet", 3), "convnet", 100, 50, "float32", (32, 32, 3)),
}  # fmt: skip
STANDARD = ("fc1_f64", "conv2flat", "convnet_16", "convnet_32", "convnet_28")
EXTRA = tuple(name for name in CASES if name not in STANDARD)
QUICK = ("fc1_f64", "conv2flat", "convnet_16")

# Per-case defaults: (loop, repeats, nt_steps, rounds), and the --quick ones.
FAST = dict(default=(50, 5, 20, 3), quick=(20, 3, 10, 1))
MEDIUM = dict(default=(10, 5, 10, 3), quick=(5, 3, 5, 1))
SLOW = dict(default=(2, 3, 5, 2), quick=(1, 2, 2, 1))
HUGE = dict(default=(1, 2, 2, 1), quick=(1, 1, 1, 1))
ONCE = dict(default=(1, 1, 1, 1), quick=(1, 1, 1, 1))
BUDGET = {
    "fc1_f64": FAST,
    "fc1_f32": FAST,
    "fc1_s100_f64": FAST,
    "fc1_s100_f32": FAST,
    "conv2flat": MEDIUM,
    "conv2flat_f64": MEDIUM,
    "convnet_16": SLOW,
    "convnet_32": HUGE,
    "convnet_28": HUGE,
    "convnet_28_s100": ONCE,
    "convnet_32_s100": ONCE,
}


def time_case(name, loop, repeats, kernel_batch_size=None, kernel_memory_mib=None):
    """Runs one case's tfkip side in this process; returns the JSON-able result."""
    import keras
    import numpy as np

    from tfkip import architectures
    from tfkip.kip import KIPModel
    from tfkip.train.loop import KIPTrainer

    import_rss = _baseline.vmhwm_mb()
    _, (arch, depth), _, support, target, dtype, shape = CASES[name]
    rng = np.random.default_rng(0)
    n = 2000
    labels = np.repeat(np.arange(10), n // 10)
    x = rng.standard_normal((n, *shape)).astype(dtype)
    y = (np.eye(10)[labels] - 0.1).astype(dtype)
    idx = np.concatenate([np.flatnonzero(labels == c)[: support // 10] for c in range(10)])
    network = architectures.get(arch, depth)
    budget = None if kernel_memory_mib is None else kernel_memory_mib * 2**20
    model = KIPModel(
        network,
        x[idx],
        y[idx],
        kernel_batch_size=kernel_batch_size,
        kernel_memory_budget=budget,
        dtype=dtype,
    )
    model.compile(optimizer=keras.optimizers.Adam(0.04))
    model.optimizer.build(model.trainable_variables)
    trainer = KIPTrainer(model, model.distribute_strategy, x, y, labels, target, seed=0)
    start = time.perf_counter()
    trainer.train(0, 1)
    first = time.perf_counter() - start
    step, times = 1, []
    for _ in range(repeats):
        start = time.perf_counter()
        trainer.train(step, loop)
        times.append((time.perf_counter() - start) / loop)
        step += loop
    # Only where one call's overhead could matter (millisecond steps): the single calls run
    # the step outside the loop's program, which costs a ConvNet process ~55 MB more peak
    # RSS than its training loop.
    fast = min(times) < 0.1
    gathered = step_on_gathered_batch(trainer, step, 10 * repeats) if fast else None
    return dict(
        impl="tfkip",
        case=name,
        first_step_s=first,
        step_on_gathered_batch_s=gathered,
        median_step_s=statistics.median(times),
        min_step_s=min(times),
        loop=loop,
        repeats=repeats,
        kernel_batch_size=kernel_batch_size,
        kernel_memory_mib=kernel_memory_mib,
        import_rss_mb=import_rss,
        self_peak_rss_mb=_baseline.vmhwm_mb(),
    )


def step_on_gathered_batch(trainer, first_step: int, count: int) -> float:
    """Median seconds of one KIP step timed as NT's script times its steps: the target
    batch is gathered before the clock starts; one call of the step, ended by reading the
    loss back. The loop's figure includes gathering each batch from the pool; this one
    does not, but it pays TensorFlow's overhead of one `tf.function` call per step, which
    the loop spreads over its steps (the first, tracing call is not counted)."""
    import tensorflow as tf

    pool = trainer._target_pool()
    one_step = tf.function(trainer._replica_step)
    times = []
    for step in range(first_step, first_step + count + 1):
        idx = trainer.sampler.indices(step)
        batch = [tf.gather(p, idx) for p in pool]  # images, labels (and target variances)
        float(batch[0][0, 0, 0, 0])  # the batch is ready
        start = time.perf_counter()
        loss, _ = one_step(tf.constant(step, tf.int64), *batch)
        float(loss)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    _baseline.add_common_arguments(parser, list(CASES))
    parser.add_argument(
        "--loop",
        type=int,
        help="tfkip: KIP steps per host call (one tf.function call). Default per case:\n"
        "50 (FC1), 10 (Conv2-Flatten), 2 (ConvNet 16x16), 1 (ConvNet 32x32, 28x28)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        help="tfkip: timed host calls after the warm-up step. Default per case:\n"
        "5, 5, 3, 2 (same order as --loop)",
    )
    parser.add_argument(
        "--nt-steps",
        type=int,
        help="neural-tangents: timed steps after its compiling step. Default per case:\n"
        "20, 10, 5, 2 (same order as --loop)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="only FC1, Conv2-Flatten and ConvNet 16x16x3 (unless --cases says\n"
        "otherwise), one round, fewer steps: --loop 20, 5, 1 (1 for the big ConvNets),\n"
        "--repeats 3, 3, 2 (1), --nt-steps 10, 5, 2 (1)",
    )
    parser.add_argument(
        "--kernel-batch-size",
        type=int,
        help="tfkip: pass KIPModel(kernel_batch_size=N) (kernel tiles of N images) instead\n"
        "of the default settings; the NT side is unchanged (it has no tiles)",
    )
    parser.add_argument(
        "--kernel-memory-mib",
        type=int,
        help="tfkip: pass KIPModel(kernel_memory_budget=N MiB) (default 256): a budget that\n"
        "holds the whole kernels leaves them untiled (faster, more memory)",
    )
    parser.add_argument("--child", choices=sorted(CASES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(
            json.dumps(
                time_case(
                    args.child,
                    args.loop or 1,
                    args.repeats or 1,
                    args.kernel_batch_size,
                    args.kernel_memory_mib,
                )
            ),
            flush=True,
        )
        return
    for flag in ("loop", "repeats", "nt_steps", "rounds", "kernel_batch_size", "kernel_memory_mib"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            parser.error(f"--{flag.replace('_', '-')} must be >= 1")
    if args.from_log:
        rows = _baseline.rows_from_log(args.from_log, "median_step_s")
        print_table(
            rows,
            any(row["nt"]["results"] for row in rows),
            "from " + " ".join(args.from_log),
        )
        return
    _baseline.exit_on_sigterm()
    nt_script = _baseline.check_nt(args, parser, "kip_step.py")
    names = _baseline.select_cases(
        args.cases, STANDARD, EXTRA, parser, quick=QUICK if args.quick else None
    )

    def budget(name):
        loop, repeats, nt_steps, rounds = BUDGET[name]["quick" if args.quick else "default"]
        return (
            args.loop or loop,
            args.repeats or repeats,
            args.nt_steps or nt_steps,
            args.rounds or rounds,
        )

    def run_tfkip(name, loop, repeats):
        cmd = [sys.executable, os.path.abspath(__file__), "--child", name]
        cmd += ["--loop", str(loop), "--repeats", str(repeats)]
        if args.kernel_batch_size:
            cmd += ["--kernel-batch-size", str(args.kernel_batch_size)]
        if args.kernel_memory_mib:
            cmd += ["--kernel-memory-mib", str(args.kernel_memory_mib)]
        return _baseline.run_measured(
            cmd,
            env=_baseline.tfkip_env(),
            timeout=args.timeout,
            max_rss_mb=args.max_rss_mb,
        )

    def run_nt(name, steps):
        _, _, nt_arch, support, target, dtype, (h, w, c) = CASES[name]
        cmd = [args.nt_python, nt_script, nt_arch, str(support), str(target), dtype]
        cmd += [str(h), str(w), str(c), str(steps)]
        return _baseline.run_measured(
            cmd,
            env=_baseline.nt_env(),
            timeout=args.timeout,
            max_rss_mb=args.max_rss_mb,
        )

    started = time.strftime("%Y-%m-%d %H:%M %Z")
    load_before = _baseline.load_line()
    rows = []
    for name in names:
        loop, repeats, nt_steps, rounds = budget(name)
        rows.append(
            _baseline.interleave(
                name,
                rounds if nt_script else 1,
                lambda name=name, loop=loop, repeats=repeats: run_tfkip(name, loop, repeats),
                (lambda name=name, steps=nt_steps: run_nt(name, steps)) if nt_script else None,
                "median_step_s",
                budget=[loop, repeats, nt_steps],
            )
        )
    print_table(
        rows,
        bool(nt_script),
        f"{started}, {load_before} at start, {_baseline.load_line()} at end",
    )


def steps_text(row, nt_shown):
    """'loop x calls; NT steps; rounds' of a row (from its results, else its budget)."""
    results = row["results"]
    planned = next((res["budget"] for res in results if "budget" in res), None)
    tk = next((res for res in row["tfkip"]["results"] if "loop" in res), None)
    nt = next((res for res in row["nt"]["results"] if "steps" in res), None)
    tk_text = (
        f"{tk['loop']} x {tk['repeats']}"
        if tk
        else f"{planned[0]} x {planned[1]}"
        if planned
        else "?"
    )
    if not nt_shown:
        return tk_text
    nt_text = str(nt["steps"]) if nt else str(planned[2]) if planned else "?"
    return f"{tk_text}; {nt_text}; {row['rounds']}"


def print_table(rows, nt_shown, when):
    print(f"\nKIP step, {when}\n")
    if nt_shown:
        print(
            "| case | tfkip s/step | tfkip peak RSS MB | NT s/step | NT peak RSS MB "
            "| tfkip / NT | steps (tfkip loop x calls; NT; rounds) |"
        )
        print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    else:
        print("| case | tfkip s/step | first step (s) | peak RSS MB | steps (loop x calls) |")
        print("| --- | ---: | ---: | ---: | --- |")
    for row in rows:
        t, n = row["tfkip"], row["nt"]
        description = CASES[row["case"]][0] if row["case"] in CASES else row["case"]
        tiles = {r.get("kernel_batch_size") for r in t["results"]} - {None}
        if tiles:
            description += ", tfkip kernel_batch_size=" + "/".join(map(str, sorted(tiles)))
        budgets = {r.get("kernel_memory_mib") for r in t["results"]} - {None}
        if budgets:
            description += ", tfkip kernel memory " + "/".join(map(str, sorted(budgets))) + " MiB"
        if nt_shown:
            print(
                f"| {description} | {_baseline.fmt_seconds(t)} | {_baseline.fmt_rss(t)} "
                f"| {_baseline.fmt_seconds(n)} | {_baseline.fmt_rss(n)} "
                f"| {_baseline.fmt_ratio(row)} | {steps_text(row, nt_shown)} |"
            )
        else:
            firsts = [r["first_step_s"] for r in t["results"] if "first_step_s" in r]
            first = f"{statistics.median(firsts):.2f}" if firsts else "-"
            print(
                f"| {description} | {_baseline.fmt_seconds(t)} | {first} "
                f"| {_baseline.fmt_rss(t)} | {steps_text(row, nt_shown)} |"
            )
    print(
        "\nSeconds per step after compilation, median; peak RSS of each process (max over "
        "rounds), imports included. '*': some round failed (see stderr)."
    )
    print_gathered_table(rows, nt_shown)


def print_gathered_table(rows, nt_shown):
    """tfkip's step timed as NT times its own (batch gathered before the clock starts)."""
    lines = []
    for row in rows:
        # Each side's figure under one key, so `aggregate` pairs them round by round.
        results = []
        for res in row["results"]:
            key = "step_on_gathered_batch_s" if res["side"] == "tfkip" else "median_step_s"
            if res.get(key) is not None:
                results.append({**res, "nt_convention_s": res[key]})
        gathered = _baseline.aggregate(row["case"], results, "nt_convention_s")
        if gathered["tfkip"]["seconds"] is None:
            continue
        text = f"| {row['case']} | {_baseline.fmt_seconds(gathered['tfkip'])} |"
        if nt_shown:
            text += f" {_baseline.fmt_seconds(gathered['nt'])} | {_baseline.fmt_ratio(gathered)} |"
        lines.append(text)
    if not lines:
        return
    print(
        "\nThe same steps timed as NT's script times its own: one step per call on a target "
        "batch gathered\nbefore the clock starts. Steps under 0.1 s only. The loop above also "
        "gathers each batch, but\nruns many steps per call: this figure instead carries "
        "TensorFlow's cost of one call per step.\n"
    )
    if nt_shown:
        print("| case | tfkip s/step | NT s/step | tfkip / NT |\n| --- | ---: | ---: | ---: |")
    else:
        print("| case | tfkip s/step |\n| --- | ---: |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
