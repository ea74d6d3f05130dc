"""Helpers of the tests/train tests: running the launch scripts in subprocesses."""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
DISTILL = REPO / "launch" / "distill.py"
LABEL_SOLVE = REPO / "launch" / "label_solve.py"

# A short FC1 float64 run on mnist_5k: 200 steps, a checkpoint every 10.
SHORT_RUN = [
    "--dataset=mnist_5k",
    "--architecture=fc",
    "--depth=1",
    "--target_batch_size=100",
    "--steps=200",
    "--steps_per_loop=10",
    "--checkpoint_every=10",
    "--eval_every=100",
    "--eval_tile=250",
    "--dtype=float64",
    "--seed=0",
]
# The same run with the random-feature NNGP: 2 twins of width 64, drawn afresh at every
# step from (seed, step) (and RF defaults: Platt loss with a learned temperature, in-run
# evaluation with the fixed evaluation twins).
RF_SHORT_RUN = [*SHORT_RUN, "--kernel=rf_nngp", "--rf_models=2", "--rf_width=64"]


def env(**extra: str) -> dict[str, str]:
    out = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="1", **extra)
    out.pop("TF_CONFIG", None)
    out.update(extra)
    return out


def launch(script: pathlib.Path, args: list[str], log: pathlib.Path, **env_extra: str):
    """Starts ``python script args`` with stdout+stderr going to ``log``."""
    handle = open(log, "wb")  # noqa: SIM115 (closed by the caller through proc.log)
    proc = subprocess.Popen(
        [sys.executable, str(script), *args],
        cwd=REPO,
        env=env(**env_extra),
        stdout=handle,
        stderr=subprocess.STDOUT,
    )
    proc.log = log
    proc.log_handle = handle
    return proc


def finish(proc, timeout: float = 300) -> str:
    """Waits for ``proc`` (killing it after ``timeout`` s); returns its log text."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    proc.log_handle.close()
    return pathlib.Path(proc.log).read_text(errors="replace")


def run(script: pathlib.Path, args: list[str], log: pathlib.Path, timeout=300, **env_extra):
    """Runs a launch script to the end; returns (returncode, log text)."""
    proc = launch(script, args, log, **env_extra)
    text = finish(proc, timeout)
    return proc.returncode, text


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def run_workers(
    script: pathlib.Path, args: list[str], log_dir: pathlib.Path, count: int = 2, timeout=300
):
    """Runs ``count`` MultiWorkerMirroredStrategy workers of ``script`` on 127.0.0.1 (one
    TF_CONFIG each, logs ``log_dir/worker{i}.log``) to the end: ``(processes, logs)``."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(count)]}
    procs = [
        launch(
            script,
            args,
            log_dir / f"worker{i}.log",
            TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
        )
        for i in range(count)
    ]
    return procs, [finish(proc, timeout=timeout) for proc in procs]


def distilled(workdir: pathlib.Path) -> dict[str, np.ndarray]:
    with np.load(workdir / "distilled.npz") as z:
        return {k: z[k] for k in z.files}


def metrics(workdir: pathlib.Path) -> list[dict]:
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def max_rel(actual, expected) -> float:
    expected = np.asarray(expected)
    return float(np.max(np.abs(np.asarray(actual) - expected)) / np.max(np.abs(expected)))


def temp_files(workdir: pathlib.Path) -> list[str]:
    """Leftovers of interrupted atomic writes (tfkip.files temp names, TF checkpoint temps)."""
    return sorted(
        str(p.relative_to(workdir))
        for p in workdir.rglob("*")
        if ".tmp-" in p.name or p.name.endswith("_temp") or "_temp/" in str(p)
    )


def fc1_trainer(data, target_batch_size: int = 100, seed: int = 0, **trainer_kwargs):
    """A `KIPTrainer` (default strategy) of FC1 from the natural support of ``data``, one
    image per class, with Adam(0.04); ``trainer_kwargs`` go to `KIPTrainer`."""
    from tfkip import architectures, train
    from tfkip.data import class_balanced_indices
    from tfkip.kip import KIPAdam, KIPModel
    from tfkip.train.loop import KIPTrainer

    idx = class_balanced_indices(data.labels_train, 1, seed)
    model = KIPModel(architectures.get("fc", 1), data.x_train[idx], data.y_train[idx])
    model.compile(optimizer=KIPAdam(0.04))
    model.optimizer.build(model.trainable_variables)
    return KIPTrainer(
        model,
        train.get_strategy("default"),
        data.x_train,
        data.y_train,
        data.labels_train,
        target_batch_size,
        seed=seed,
        **trainer_kwargs,
    )
