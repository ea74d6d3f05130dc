"""Label Solve as a run: the natural class-balanced support with its closed-form best
labels (`tfkip.kip.label_solve`), in a workdir like a KIP run's (`launch/label_solve.py`)."""

from __future__ import annotations

import time
from typing import Any

from tfkip.kip.krr import check_finite
from tfkip.runtime.progress import Progress
from tfkip.train.config import DistillConfig
from tfkip.train.run import Run


def run_label_solve(config: DistillConfig) -> list[dict[str, Any]]:
    """Label Solve on the natural class-balanced support over the whole train split
    (minus the validation images); the support evaluated before and after (with
    ``eval_every=0``: not evaluated, one record with ``label_solve_seconds``)."""
    run = Run(config, label_solve=True)
    evaluate = run.evaluate if config.eval_every else (lambda step, **extra: extra)
    natural = evaluate(0, labels="natural")
    progress = Progress(
        len(run.x_target),
        "Label Solve",
        unit="target images",
        per_unit=(int(run.model.support_images.shape[0]), "pairs"),
        quiet_for=10,
    )
    start = time.perf_counter()
    solved_labels = run.trainer.label_solve(
        run.x_target, run.y_target, config.reg, progress=progress.update
    )
    check_finite(solved_labels, "The solved labels")
    seconds = time.perf_counter() - start
    run.model.support_labels.assign(solved_labels)
    solved = evaluate(0, labels="solved", label_solve_seconds=round(seconds, 3))
    records = [natural, solved] if config.eval_every else [dict(solved, step=0)]
    if run.is_chief:
        run.workdir.write_metrics(records)
    run.write_outputs(0)
    return records
