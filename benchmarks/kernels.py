"""Kernel forward speed and peak memory, tfkip beside neural-tangents, interleaved.

    # side by side, the five standard cases, default call (~15 min on an idle 2-core
    # machine, most of it neural-tangents on the two 32x32x3 cases; several times that
    # on a shared one):
    python benchmarks/kernels.py --nt-python=/tmp/nt-baseline-venv/bin/python
    # quick: FC3, Conv3+Flatten and Conv3+GAP 16x16x3, one round (~3 min idle):
    python benchmarks/kernels.py --nt-python=/tmp/nt-baseline-venv/bin/python --quick
    # one case, or the extras (explicit tiles) too:
    python benchmarks/kernels.py --nt-python=/tmp/nt-baseline-venv/bin/python --cases=convgap3_16
    python benchmarks/kernels.py --nt-python=/tmp/nt-baseline-venv/bin/python --cases=all
    # tfkip alone (no neural-tangents venv needed), float64:
    python benchmarks/kernels.py --dtype=float64
    # the table again from the stderr of earlier runs:
    python benchmarks/kernels.py --from-log run1.err run2.err

tfkip side: ``tf.function(lambda a, b: network.kernel_fn(a, b, ('nngp', 'ntk'),
batch_size=B), jit_compile=True)`` with ``B = None`` (the default call) for the standard
cases; the extras pass explicit tiles. Inputs are seeded standard normal, x1 != x2. One
call warms up (compiles), then the median of ``--repeats`` calls, each read back to host.

neural-tangents side: ``NT_SCRIPTS/bench.py --case NAME`` run with ``--nt-python``: the
same networks and shapes under ``jax.jit`` (same warm-up and median). Extras with tiles
are compared with the same NT case (which has no tiles).

Every measurement is its own process; peak RSS is that process's ``ru_maxrss`` (from
``os.wait4``), including ~0.6 GB for importing TensorFlow (neural-tangents imports
TensorFlow too). With ``--nt-python`` each case runs tfkip and NT alternately for
``--rounds`` rounds (the order flips every round); the ratio is tfkip / NT seconds, the
median of the per-round ratios (range in brackets). Progress and raw per-process results
go to stderr as JSON lines; the table goes to stdout. A process whose RSS passes
``--max-rss-mb`` is killed and its cell reads "failed (killed: ...)".
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time

import _baseline

# name: description, input shape, batch_size passed to kernel_fn, NT bench.py case
CASES = {
    "fc3_784": ("FC3, 784-dim, 1000 x 1000", (1000, 784), None, "fc3_784"),
    "convflat3_28": ("Conv3 + Flatten, 28x28x1, 100 x 100", (100, 28, 28, 1), None, "convflat3_28"),
    "convgap3_16": ("Conv3 + GAP, 16x16x3, 20 x 20", (20, 16, 16, 3), None, "convgap3_16"),
    "convgap3_32": ("Conv3 + GAP, 32x32x3, 10 x 10", (10, 32, 32, 3), None, "convgap3_32"),
    "myrtle5_32": ("Myrtle5, 32x32x3, 10 x 10", (10, 32, 32, 3), None, "myrtle5_32"),
    # extras (run with --cases=all or by name): explicit tiles
    "convgap3_16_b1": ("Conv3 + GAP, 16x16x3, 20 x 20, tiles of 1 pair",
                       (20, 16, 16, 3), 1, "convgap3_16"),
    "convgap3_32_b1": ("Conv3 + GAP, 32x32x3, 10 x 10, tiles of 1 pair",
                       (10, 32, 32, 3), 1, "convgap3_32"),
    "myrtle5_32_b1": ("Myrtle5, 32x32x3, 10 x 10, tiles of 1 pair",
                      (10, 32, 32, 3), 1, "myrtle5_32"),
    "convnet_32_tiled": ("ConvNet (pooled), 32x32x3, 40 x 40 in 4x4 tiles",
                         (40, 32, 32, 3), 4, None),
    "fc3_784_2000_tiled": ("FC3, 784-dim, 2000 x 2000 in 500x500 tiles",
                           (2000, 784), 500, None),
    # evaluation shapes (issue 27): K_ts of 100 test images on 10 support images; the NT
    # side is this folder's nt_convnet_kernel.py (bench.py has no ConvNet-Flatten case)
    "convnet_kts28": ("ConvNet (pooled, Flatten), 28x28x1, K_ts 100 x 10",
                      ((100, 28, 28, 1), (10, 28, 28, 1)), None, "local:convnet_kts28"),
    "convnet_kts32": ("ConvNet (pooled, Flatten), 32x32x3, K_ts 100 x 10",
                      ((100, 32, 32, 3), (10, 32, 32, 3)), None, "local:convnet_kts32"),
    "convnet_kts28_20": ("ConvNet (pooled, Flatten), 28x28x1, K_ts 20 x 10",
                         ((20, 28, 28, 1), (10, 28, 28, 1)), None, "local:convnet_kts28_20"),
    "convnet_kts32_20": ("ConvNet (pooled, Flatten), 32x32x3, K_ts 20 x 10",
                         ((20, 32, 32, 3), (10, 32, 32, 3)), None, "local:convnet_kts32_20"),
}  # fmt: skip
STANDARD = ("fc3_784", "convflat3_28", "convgap3_16", "convgap3_32", "myrtle5_32")
EXTRA = tuple(name for name in CASES if name not in STANDARD)
QUICK = ("fc3_784", "convflat3_28", "convgap3_16")
ROUNDS = {"fc3_784": 3, "convflat3_28": 3, "convgap3_16": 2, "fc3_784_2000_tiled": 3}
NT_MIN_REPEATS = 5  # bench.py refuses fewer


def build(name):
    """The tfkip network of case ``name`` (public `tfkip.kernels` / architectures API)."""
    from tfkip import architectures
    from tfkip import kernels as k

    kw = dict(W_std=math.sqrt(2.0), b_std=0.1)
    if name.startswith("fc3"):
        return architectures.get("fc", 3)
    if name == "convflat3_28":
        return architectures.get("conv", 3)
    if name.startswith("convgap3"):
        layers = []
        for _ in range(3):
            layers += [k.Conv(128, (3, 3), padding="SAME", **kw), k.Relu()]
        return k.serial(*layers, k.GlobalAvgPool(), k.Dense(10, **kw))
    if name.startswith("myrtle5"):
        return architectures.get("myrtle", 5)
    if name == "convnet_32_tiled" or name.startswith("convnet_kts"):
        return architectures.get("convnet", 3)
    raise ValueError(name)


def run_case(name, repeats, dtype):
    """Runs one case's tfkip side in this process; returns the JSON-able result."""
    import numpy as np
    import tensorflow as tf

    import_rss = _baseline.vmhwm_mb()
    _, shape, batch_size, _ = CASES[name]
    network = build(name)
    shape1, shape2 = shape if isinstance(shape[0], tuple) else (shape, shape)
    x1 = tf.constant(np.random.default_rng(0).standard_normal(shape1).astype(dtype))
    x2 = tf.constant(np.random.default_rng(1).standard_normal(shape2).astype(dtype))
    fn = tf.function(
        lambda a, b: network.kernel_fn(a, b, ("nngp", "ntk"), batch_size=batch_size),
        jit_compile=True,
    )
    start = time.perf_counter()
    out = fn(x1, x2)
    ntk = out.ntk.numpy()
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(x1, x2).ntk.numpy()
        times.append(time.perf_counter() - start)
    assert ntk.dtype == np.dtype(dtype) and np.isfinite(ntk).all()
    return dict(
        impl="tfkip",
        case=name,
        dtype=dtype,
        batch_size=batch_size,
        first_call_s=first,
        median_s=statistics.median(times),
        min_s=min(times),
        repeats=repeats,
        import_rss_mb=import_rss,
        self_peak_rss_mb=_baseline.vmhwm_mb(),
    )


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    _baseline.add_common_arguments(parser, list(CASES))
    parser.add_argument(
        "--repeats",
        type=int,
        default=5,
        help="timed calls after the warm-up, per process (default: %(default)s; the NT\n"
        f"side gets at least {NT_MIN_REPEATS}, bench.py's minimum)",
    )
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "float64"],
        help="dtype of the inputs and kernels, both sides (default: %(default)s)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="only FC3, Conv3+Flatten and Conv3+GAP 16x16x3 (unless --cases says\n"
        "otherwise), one round",
    )
    parser.add_argument("--child", choices=sorted(CASES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.repeats < 1 or (args.rounds is not None and args.rounds < 1):
        parser.error("--repeats and --rounds must be >= 1")
    if args.child:
        print(json.dumps(run_case(args.child, args.repeats, args.dtype)), flush=True)
        return
    if args.from_log:
        rows = _baseline.rows_from_log(args.from_log, "median_s")
        nt_shown = any(row["nt"]["results"] for row in rows)
        print_table(rows, nt_shown, "from " + " ".join(args.from_log), args)
        return
    _baseline.exit_on_sigterm()
    nt_script = _baseline.check_nt(args, parser, "bench.py")
    names = _baseline.select_cases(
        args.cases, STANDARD, EXTRA, parser, quick=QUICK if args.quick else None
    )

    def run_tfkip(name):
        cmd = [sys.executable, os.path.abspath(__file__), "--child", name]
        cmd += ["--repeats", str(args.repeats), "--dtype", args.dtype]
        return _baseline.run_measured(
            cmd, env=_baseline.tfkip_env(), timeout=args.timeout, max_rss_mb=args.max_rss_mb
        )

    def run_nt(nt_case):
        script = nt_script
        if nt_case.startswith("local:"):  # a driver in this folder, run by the NT python
            script, nt_case = os.path.join(_baseline.HERE, "nt_convnet_kernel.py"), nt_case[6:]
        cmd = [args.nt_python, script, "--case", nt_case, "--dtype", args.dtype]
        cmd += ["--repeats", str(max(args.repeats, NT_MIN_REPEATS))]
        return _baseline.run_measured(
            cmd, env=_baseline.nt_env(), timeout=args.timeout, max_rss_mb=args.max_rss_mb
        )

    started = time.strftime("%Y-%m-%d %H:%M %Z")
    load_before = _baseline.load_line()
    rows = []
    for name in names:
        nt_case = CASES[name][3] if nt_script else None
        rounds = args.rounds or (1 if args.quick else ROUNDS.get(name, 1))
        rows.append(
            _baseline.interleave(
                name,
                rounds if nt_case else 1,
                lambda name=name: run_tfkip(name),
                (lambda nt_case=nt_case: run_nt(nt_case)) if nt_case else None,
                "median_s",
            )
        )
    when = f"{started}, {load_before} at start, {_baseline.load_line()} at end"
    print_table(rows, bool(nt_script), when, args)


def print_table(rows, nt_shown, when, args):
    dtypes = sorted({r.get("dtype", "?") for row in rows for r in row["results"] if "dtype" in r})
    dtype = "/".join(dtypes) or args.dtype
    print(f"\nKernel forward ({dtype}, get=('nngp', 'ntk')), {when}\n")
    if nt_shown:
        print(
            "| case | tfkip (s) | tfkip peak RSS MB | NT (s) | NT peak RSS MB | tfkip / NT "
            "| rounds |"
        )
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    else:
        print("| case | tfkip (s) | first call (s) | peak RSS MB (of which import) |")
        print("| --- | ---: | ---: | ---: |")
    for row in rows:
        t, n = row["tfkip"], row["nt"]
        description = CASES[row["case"]][0] if row["case"] in CASES else row["case"]
        if nt_shown:
            print(
                f"| {description} | {_baseline.fmt_seconds(t)} | {_baseline.fmt_rss(t)} "
                f"| {_baseline.fmt_seconds(n)} | {_baseline.fmt_rss(n)} "
                f"| {_baseline.fmt_ratio(row)} | {row['rounds']} |"
            )
        else:
            ok = [r for r in t["results"] if "first_call_s" in r]
            first = f"{statistics.median(r['first_call_s'] for r in ok):.2f}" if ok else "-"
            imported = f" ({max(r['import_rss_mb'] for r in ok):.0f})" if ok else ""
            print(
                f"| {description} | {_baseline.fmt_seconds(t)} | {first} "
                f"| {_baseline.fmt_rss(t)}{imported} |"
            )
    repeats = sorted({r["repeats"] for row in rows for r in row["results"] if "repeats" in r})
    print(
        f"\nMedian of {'/'.join(map(str, repeats)) or args.repeats} calls after a warm-up, per "
        "process; peak RSS of each process (max over rounds), imports included. '*': some "
        "round failed (see stderr)."
    )


if __name__ == "__main__":
    main()
