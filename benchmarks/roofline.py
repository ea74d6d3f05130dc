"""Measured kernel throughput beside this machine's roofline bound, per case.

    # the forward cases (ConvNet K_ts at 28x28x1 and 32x32x3, the K(x, x) diagonal):
    python benchmarks/roofline.py
    # the 28x28 K_ts at the evaluation's shape (10 support x 1000 test images):
    python benchmarks/roofline.py --cases=kts28 --targets=1000
    # the KIP steps too (support 100 / target 100 at 28x28x1, 100 / 50 at 32x32x3; slow):
    python benchmarks/roofline.py --kip
    # write the table to benchmarks/results/roofline.md as well:
    python benchmarks/roofline.py --write

In one process: the attainable FLOP/s (the best of a few 4096 x 4096 float32 matmuls, XLA)
and memory bandwidth (bytes read + written by a ``2 x + 1`` pass over 256 MiB, and bytes
read by a sum over it), measured before and after the cases; then per case the measured
milliseconds per input pair (median of ``--repeats`` calls after a compiling one; beside
it the process's CPU time per pair divided by the cores, what the wall time would be with
every core busy on this process alone: a shared machine inflates wall time much more than
CPU time) and the
bound from `_costs` (the layer-by-layer flops and bytes of the recursions divided by those
rates; docs/performance.md, "Roofline"), and their ratio.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time

import _costs

HERE = os.path.dirname(os.path.abspath(__file__))

# name: description, image shape, what runs, (support, target)
CASES = {
    "kts28": ("ConvNet 28x28x1, K_ts", (28, 28, 1), "kts", (10, 100)),
    "kts32": ("ConvNet 32x32x3, K_ts", (32, 32, 3), "kts", (10, 100)),
    "diag28": ("ConvNet 28x28x1, K(x, x) diagonal", (28, 28, 1), "diag", (0, 100)),
    # what evaluation and Label Solve run: tiles planned for a forward pass alone
    "kts28f": ("ConvNet 28x28x1, K_ts, forward_only", (28, 28, 1), "ktsf", (10, 100)),
    "kts32f": ("ConvNet 32x32x3, K_ts, forward_only", (32, 32, 3), "ktsf", (10, 100)),
    "kip28": ("ConvNet 28x28x1, KIP step (forward + gradient)", (28, 28, 1), "kip", (100, 100)),
    "kip32": ("ConvNet 32x32x3, KIP step (forward + gradient)", (32, 32, 3), "kip", (100, 50)),
}
FORWARD = ("kts28f", "kts32f", "kts28", "kts32", "diag28")
KIP = ("kip28", "kip32")


def measure_machine(tf, repeats: int = 5) -> dict:
    """``{"flops_per_s", "bytes_per_s", "read_bytes_per_s"}``: best matmul and streaming rates."""
    n = 4096
    a = tf.random.normal([n, n], dtype=tf.float32)
    matmul = tf.function(lambda x: tf.matmul(x, x), jit_compile=True)
    m = 2**26  # 256 MiB of float32
    x = tf.random.normal([m], dtype=tf.float32)
    axpb = tf.function(lambda v: 2.0 * v + 1.0, jit_compile=True)
    total = tf.function(lambda v: tf.reduce_sum(v), jit_compile=True)

    def best(fn, arg):
        fn(arg).numpy()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            out = fn(arg)
            (out if out.shape.rank == 0 else out[0]).numpy()
            times.append(time.perf_counter() - start)
        return min(times)

    return dict(
        flops_per_s=2 * n**3 / best(matmul, a),
        bytes_per_s=2 * 4 * m / best(axpb, x),
        read_bytes_per_s=4 * m / best(total, x),
    )


def run_case(tf, np, name, support, target, repeats):
    """Median seconds of one call of the case and the input pairs it computes."""
    from tfkip import architectures

    _, shape, kind, _ = CASES[name]
    network = architectures.get("convnet", 3)
    rng = np.random.default_rng(0)
    x_s = tf.constant(rng.standard_normal((support, *shape)).astype("float32"))
    x_t = tf.constant(rng.standard_normal((target, *shape)).astype("float32"))
    if kind in ("kts", "ktsf"):
        only = kind == "ktsf"
        fn = tf.function(
            lambda a, b: network.kernel_fn(a, b, "ntk", forward_only=only), jit_compile=True
        )
        args, pairs = (x_t, x_s), support * target
    elif kind == "diag":
        fn = tf.function(lambda a: network.self_variances(a)[-1], jit_compile=True)
        args, pairs = (x_t,), target
    else:
        from tfkip.kip import krr

        y_s = tf.one_hot(np.arange(support) % 10, 10) - 0.1
        y_t = tf.one_hot(np.arange(target) % 10, 10) - 0.1

        def step(a, b):
            with tf.GradientTape() as tape:
                tape.watch(a)
                k_ss, k_ts = network.kip_kernel_fn(a, b, "ntk")
                loss = tf.reduce_mean((krr.krr_predict(k_ss, k_ts, y_s, 1e-6) - y_t) ** 2)
            return loss, tape.gradient(loss, a)

        fn = tf.function(step, jit_compile=True)
        args, pairs = (x_s, x_t), support * (support + 1) // 2 + support * target

    def call():
        out = fn(*args)
        tf.nest.map_structure(lambda t: t.numpy(), out)

    start = time.perf_counter()
    call()
    first = time.perf_counter() - start
    times, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        call()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return dict(
        median_s=statistics.median(times), cpu_s=statistics.median(cpu), first_s=first, pairs=pairs
    )


def bound(name, support, target, rates, layers=False):
    """Roofline seconds per pair of the case (and the per-layer rows with ``layers``)."""
    from tfkip import architectures

    _, shape, kind, _ = CASES[name]
    network = architectures.get("convnet", 3)
    fps, bps = rates["flops_per_s"], rates["bytes_per_s"]
    selfc = _costs.self_costs(network, shape)
    if kind == "diag":
        costs = selfc
        per_pair = _costs.totals(costs, fps, bps)
    elif kind in ("kts", "ktsf"):
        costs = _costs.forward_costs(network, shape)
        per_pair = _costs.totals(costs, fps, bps)
        extra = _costs.totals(selfc, fps, bps, (support + target) / (support * target))
        per_pair = {key: per_pair[key] + extra[key] for key in per_pair}
    else:
        costs = _costs.forward_costs(network, shape) + _costs.backward_costs(network, shape)
        per_pair = _costs.totals(costs, fps, bps)
        pairs = support * (support + 1) // 2 + support * target
        extra = _costs.totals(selfc, fps, bps, 2 * (support + target) / pairs)
        per_pair = {key: per_pair[key] + extra[key] for key in per_pair}
    rows = [(c.name, c.layout, c.flops, c.bytes, c.seconds(fps, bps)) for c in costs]
    return per_pair, rows if layers else None


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", HERE, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "-C", HERE, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except OSError:
        return "unknown"


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--cases",
        default=",".join(FORWARD),
        help=f"comma-separated cases of {sorted(CASES)} (default: %(default)s)",
    )
    parser.add_argument("--kip", action="store_true", help="add the KIP step cases (slow)")
    parser.add_argument("--support", type=int, help="support images (default: per case)")
    parser.add_argument(
        "--targets", type=int, help="target / test images (default: per case, 100 or 50)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed calls (default: 3)")
    parser.add_argument("--layers", action="store_true", help="also print the per-layer cost rows")
    parser.add_argument(
        "--write",
        nargs="?",
        const=os.path.join(HERE, "results", "roofline.md"),
        help="write the table (markdown) to this path (default: benchmarks/results/roofline.md)",
    )
    args = parser.parse_args()
    names = [n for n in args.cases.split(",") if n]
    if args.kip:
        names += [n for n in KIP if n not in names]
    unknown = [n for n in names if n not in CASES]
    if unknown or args.repeats < 1:
        parser.error(f"unknown cases {unknown} (known: {sorted(CASES)}) or --repeats < 1")

    from tfkip.runtime import configure_xla

    configure_xla()  # as the launchers do, before anything compiles

    import numpy as np
    import tensorflow as tf

    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load_before = os.getloadavg()
    before = measure_machine(tf)
    print(_rates_line("machine before", before), flush=True)
    results = []
    for name in names:
        support, target = CASES[name][3]
        support = args.support or support
        target = args.targets or target
        if CASES[name][2] == "diag":
            support = 0
        measured = run_case(tf, np, name, support, target, args.repeats)
        results.append((name, support, target, measured))
        print(f"{name}: {measured}", flush=True)
    after = measure_machine(tf)
    print(_rates_line("machine after", after), flush=True)
    rates = {key: max(before[key], after[key]) for key in before}
    load_after = os.getloadavg()

    lines = [
        "# Roofline: measured kernel time per input pair against this machine's bound",
        "",
        f"- commit {git_commit()}, {started}, {platform.node()} ({os.cpu_count()} cores), "
        f"load average {load_before[0]:.2f} at start, {load_after[0]:.2f} at end",
        f"- command: `python benchmarks/roofline.py {' '.join(sys.argv[1:])}`",
        f"- {_rates_line('rates (best of before/after)', rates)}",
        "- ConvNet = `architectures.get('convnet', 3)`, float32, NTK, default call "
        "(tiles planned from the default 256 MiB budget; `forward_only` rows: tiles planned "
        "for a forward pass alone, as evaluation and Label Solve run); bound = sum over "
        "passes of "
        "max(flops / FLOP/s, bytes / (bytes/s)), see docs/performance.md",
        "",
        "| case | pairs | measured ms/pair | bound ms/pair | measured / bound "
        f"| CPU ms/pair / {os.cpu_count()} | GFLOP/pair | MB/pair | first call s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    layer_rows = []
    for name, support, target, measured in results:
        per_pair, rows = bound(name, support, target, rates, layers=args.layers)
        ms = 1e3 * measured["median_s"] / measured["pairs"]
        cpu_ms = 1e3 * measured["cpu_s"] / measured["pairs"] / os.cpu_count()
        b = 1e3 * per_pair["bound_s"]
        shape = f"{target}" if not support else f"{support} x {target}"
        if CASES[name][2] == "kip":
            shape = f"support {support}, target {target}"
        lines.append(
            f"| {CASES[name][0]}, {shape} | {measured['pairs']} | {ms:.3f} | {b:.3f} "
            f"| {ms / b:.1f} | {cpu_ms:.3f} "
            f"| {per_pair['flops'] / 1e9:.3f} | {per_pair['bytes'] / 1e6:.1f} "
            f"| {measured['first_s']:.1f} |"
        )
        if rows:
            layer_rows.append((name, rows))
    for name, rows in layer_rows:
        lines += ["", f"Per layer, {name} (per pair):", ""]
        lines += ["| pass | layout | MFLOP | MB | bound ms |", "| --- | --- | ---: | ---: | ---: |"]
        lines += [f"| {n} | {lay} | {f / 1e6:.1f} | {b / 1e6:.2f} | {1e3 * s:.3f} |"
                  for n, lay, f, b, s in rows]  # fmt: skip
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    if args.write:
        os.makedirs(os.path.dirname(os.path.abspath(args.write)), exist_ok=True)
        with open(args.write, "w") as f:
            f.write(text)
        print(f"wrote {args.write}")


def _rates_line(label, rates) -> str:
    return (
        f"{label}: {rates['flops_per_s'] / 1e9:.0f} GFLOP/s (matmul), "
        f"{rates['bytes_per_s'] / 1e9:.1f} GB/s (read + write), "
        f"{rates['read_bytes_per_s'] / 1e9:.1f} GB/s (read)"
    )


if __name__ == "__main__":
    main()
