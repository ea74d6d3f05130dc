r"""Time to accuracy: each distillation method under one wall budget, scored by exact KRR.

    python benchmarks/time_to_accuracy.py --dataset=mnist_5k --architecture=convnet \
        --support_per_class=1 --budget=600 --methods=kip,ls --test_examples=1000
    python benchmarks/time_to_accuracy.py --architecture=fc --depth=1 --budget=20 \
        --distill_flags="--target_batch_size=100 --steps_per_loop=10"      # a quick look

For every method of --methods (`METHODS`: a job and its extra launch/distill.py flags, so
a new method is one line), runs its launch script in a subprocess on a fresh workdir with
``--max_time=BUDGET --eval_every=0 --snapshot_every_seconds=EVERY`` (no in-run
evaluation: the budget goes to distillation), so the run writes its support to
``snapshots/`` at step 0 and every EVERY seconds of training loop (compilation included,
checkpoints and start-up excluded: `tfkip.train.snapshots`). Label Solve ('ls') is one
point: the natural support with solved labels, at the seconds the solve took. Then every
snapshot is evaluated by KRR with an exact kernel (--kernel; default the exact kernel each
method distils with or, for a random-feature method, estimates) on the first
--test_examples test images, with one compiled evaluation per method
(`tfkip.evaluate.prepare_evaluator`).

Writes into --out (default benchmarks/results/) ``time_to_accuracy_D_A_Nipc.csv`` (one row
per point), ``.png`` (test accuracy vs training seconds, one line per method) and ``.md``
(commit, date, machine, command, a summary at a quarter, half and all of the budget, and
every point). Timings depend on the machine's load: the .md records the load average.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

# name -> (launch script, extra flags). The common flags come from this script's.
METHODS = {
    "kip": ("distill", []),  # exact KIP (--kernel of --distill_flags, default ntk)
    "rf_kip": ("distill", ["--kernel=rf_nngp"]),  # random-feature KIP
    "ls": ("label_solve", []),  # Label Solve: one point
}
FIELDS = ("method", "step", "train_seconds", "elapsed_seconds", "test_accuracy", "test_mse")
FIELDS += ("kernel",)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="mnist_5k", help="launch/distill.py --dataset")
    parser.add_argument("--architecture", default="fc", help="kernel architecture preset")
    parser.add_argument("--depth", type=int, default=None, help="default: the preset's")
    parser.add_argument("--support_per_class", type=int, default=1, help="images per class")
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    parser.add_argument("--seed", type=int, default=0, help="the runs' --seed")
    parser.add_argument(
        "--methods", default="kip,ls", help=f"comma list of methods among {sorted(METHODS)}"
    )
    parser.add_argument(
        "--budget", type=float, default=600.0, help="--max_time of each distillation (s)"
    )
    parser.add_argument(
        "--snapshot_every", type=float, default=None, help="seconds (default: budget / 20)"
    )
    parser.add_argument(
        "--distill_flags", default="", help="more launch/distill.py flags for every method"
    )
    parser.add_argument(
        "--method_flags",
        action="append",
        default=[],
        metavar="METHOD=FLAGS",
        help="more launch flags for one method, e.g. 'kip=--target_batch_size=10' (repeatable)",
    )
    parser.add_argument(
        "--kernel",
        default=None,
        choices=["ntk", "nngp"],
        help="exact evaluation kernel (default: each method's own, or the one it estimates)",
    )
    parser.add_argument(
        "--test_examples", type=int, default=1000, help="first N test images (0: all)"
    )
    parser.add_argument("--out", default=os.path.join(HERE, "results"), help="results folder")
    parser.add_argument(
        "--workdir_root", default=None, help="where the runs' fresh workdirs go (default: tmp)"
    )
    args = parser.parse_args(argv)
    args.methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown or not args.methods:
        parser.error(f"--methods must name some of {sorted(METHODS)}. Received: {unknown}")
    if not args.budget > 0:
        parser.error(f"--budget must be > 0 seconds. Received: {args.budget}")
    for item in args.method_flags:
        if item.partition("=")[0] not in METHODS or "=" not in item:
            parser.error(
                f"--method_flags must be METHOD=FLAGS, METHOD in {sorted(METHODS)}. "
                f"Received: {item!r}"
            )
    if args.snapshot_every is None:
        args.snapshot_every = args.budget / 20
    return args


def common_flags(args) -> list[str]:
    flags = [
        f"--dataset={args.dataset}",
        f"--architecture={args.architecture}",
        f"--support_per_class={args.support_per_class}",
        f"--dtype={args.dtype}",
        f"--seed={args.seed}",
    ]
    if args.depth is not None:
        flags.append(f"--depth={args.depth}")
    return flags + shlex.split(args.distill_flags)


def method_command(args, method: str, workdir: str) -> list[str]:
    """The launch command of ``method`` (see `METHODS`)."""
    script, extra = METHODS[method]
    cmd = [sys.executable, os.path.join(REPO, "launch", f"{script}.py")]
    cmd += [*common_flags(args), *extra, f"--workdir={workdir}", "--eval_every=0"]
    if script == "distill":
        cmd += [
            "--steps=100000000",
            f"--max_time={args.budget:g}",
            f"--snapshot_every_seconds={args.snapshot_every:g}",
        ]
    for item in args.method_flags:  # last: they override the flags above
        name, _, flags = item.partition("=")
        if name == method:
            cmd += shlex.split(flags)
    return cmd


def run_method(args, method: str, workdir: str) -> dict:
    cmd = method_command(args, method, workdir)
    print("$", shlex.join(cmd), flush=True)
    start = time.monotonic()
    with open(os.path.join(workdir + ".log"), "w") as log:
        proc = subprocess.run(
            cmd, stdout=log, stderr=subprocess.STDOUT, timeout=args.budget + 900, cwd=REPO
        )
    if proc.returncode != 0:
        with open(workdir + ".log") as log:
            tail = log.read()[-2000:]
        raise RuntimeError(f"{method} failed (status {proc.returncode}):\n{tail}")
    shown = [os.path.relpath(c, REPO) if c.startswith(REPO + os.sep) else c for c in cmd[1:]]
    return {"command": "python " + shlex.join(shown), "wall_seconds": time.monotonic() - start}


def snapshot_sets(method: str, workdir: str) -> list[tuple[dict, object]]:
    """``(point, (images, labels) or None)`` of a run: its snapshots, or Label Solve's
    one set (None: the run's own distilled.npz) at the seconds of the solve."""
    from tfkip import files as _files
    from tfkip.train.snapshots import SNAPSHOT_DIR, read_index

    if METHODS[method][0] == "label_solve":
        lines = _files.read_bytes(os.path.join(workdir, "metrics.jsonl")).decode().splitlines()
        record = json.loads(lines[-1])
        seconds = record["label_solve_seconds"]
        return [({"step": 0, "train_seconds": seconds, "elapsed_seconds": None}, None)]
    folder = os.path.join(workdir, SNAPSHOT_DIR)
    out = []
    for entry in read_index(folder):
        arrays = _files.load_npz(os.path.join(folder, entry["file"]))
        point = {k: entry[k] for k in ("step", "train_seconds", "elapsed_seconds")}
        out.append((point, (arrays["images"], arrays["labels"])))
    return out


def evaluate_points(args, method: str, workdir: str) -> list[dict]:
    """Every point of a method's run, scored with the exact kernel on the test split."""
    from tfkip.evaluate import EvaluateConfig, prepare_evaluator

    config = EvaluateConfig(
        workdir,
        kernel=args.kernel,
        max_test_examples=args.test_examples or None,
        lookup_index=False,
    )
    evaluator = prepare_evaluator(config)
    rows = []
    for point, arrays in snapshot_sets(method, workdir):
        metrics = evaluator.evaluate(*(arrays or (None, None)), progress=False)
        rows.append({"method": method, **point, **metrics, "kernel": evaluator.settings.kernel})
        print(
            f"{method} step {point['step']} ({point['train_seconds']:.1f} s): "
            f"test accuracy {metrics['test_accuracy']:.4f}",
            flush=True,
        )
    return rows


def accuracy_at(rows: list[dict], seconds: float) -> dict | None:
    """The last point at or before ``seconds`` of training."""
    before = [r for r in rows if r["train_seconds"] <= seconds + 1e-9]
    return before[-1] if before else None


def machine() -> str:
    try:
        load = "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:
        load = "load average ?"
    return f"{platform.platform()}, {os.cpu_count()} CPUs, {platform.python_version()}, {load}"


def commit() -> str:
    def git(*a):
        return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True).stdout

    head = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    return head + (" (with uncommitted changes)" if git("status", "--porcelain").strip() else "")


def markdown(args, rows, runs, name: str) -> str:
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    fractions = (0.25, 0.5, 1.0)
    lines = [
        f"# Time to accuracy: {args.dataset}, {args.architecture}, "
        f"{args.support_per_class} image(s) per class",
        "",
        f"- commit: {commit()}; date: {date}",
        f"- machine: {machine()}",
        f"- command: `python benchmarks/time_to_accuracy.py {shlex.join(sys.argv[1:])}`",
        f"- budget {args.budget:g} s per method (`--max_time`, from each command's start); "
        "seconds below are the training loop's (compilation included, start-up, "
        "checkpoints and evaluation excluded); Label Solve: the solve's seconds.",
        "- test accuracy: exact-kernel KRR on "
        + (f"the first {args.test_examples}" if args.test_examples else "all the")
        + " test images.",
        "",
    ]
    for method, run in runs.items():
        lines.append(f"- {method}: `{run['command']}` ({run['wall_seconds']:.0f} s wall)")
    header = " | ".join(f"acc. at {f * args.budget:g} s" for f in fractions)
    lines += ["", f"| method | kernel | {header} | last step |", "|---" * 6 + "|"]
    for method in runs:
        mine = [r for r in rows if r["method"] == method]
        cells = []
        for f in fractions:
            row = accuracy_at(mine, f * args.budget)
            cells.append("-" if row is None else f"{row['test_accuracy']:.4f}")
        last = mine[-1]
        lines.append(
            f"| {method} | {last['kernel']} | {' | '.join(cells)} | {last['step']} "
            f"({last['train_seconds']:.1f} s) |"
        )
    lines += ["", f"![test accuracy vs seconds]({name}.png)", "", "All points:", ""]
    lines += ["| method | step | train seconds | test accuracy | test mse |", "|---" * 5 + "|"]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['step']} | {r['train_seconds']:.1f} | "
            f"{r['test_accuracy']:.4f} | {r['test_mse']:.5f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    args = parse_args(argv)
    import _plot

    os.makedirs(args.out, exist_ok=True)
    root = tempfile.mkdtemp(prefix="time_to_accuracy_", dir=args.workdir_root)
    name = (
        f"time_to_accuracy_{args.dataset.replace(':', '_').replace('/', '_')}_"
        f"{args.architecture}_{args.support_per_class}ipc"
    )
    runs, rows = {}, []
    for method in args.methods:
        runs[method] = run_method(args, method, os.path.join(root, method))
    for method in args.methods:  # evaluation after all runs: it never overlaps a run
        rows += evaluate_points(args, method, os.path.join(root, method))
    paths = {ext: os.path.join(args.out, f"{name}.{ext}") for ext in ("csv", "png", "md")}
    with open(paths["csv"], "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows({k: r.get(k) for k in FIELDS} for r in rows)
    series = [
        (
            m,
            [r["train_seconds"] for r in rows if r["method"] == m],
            [r["test_accuracy"] for r in rows if r["method"] == m],
        )
        for m in args.methods
    ]
    title = f"{args.dataset} {args.architecture} {args.support_per_class}/class"
    _plot.line_plot(series, paths["png"], title, "training seconds", "test accuracy")
    with open(paths["md"], "w") as f:
        f.write(markdown(args, rows, runs, name))
    print("wrote", ", ".join(paths.values()), "; runs in", root)
    return {"rows": rows, "paths": paths, "workdirs": root}


if __name__ == "__main__":
    main()
