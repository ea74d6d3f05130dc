r"""KIP: distil a dataset into a few support images for an infinite-width kernel.

Quickstart (bundled MNIST sample, no download; a few minutes on 2 CPU cores):

  python launch/distill.py --dataset=mnist_5k --architecture=fc --depth=1 \
      --support_per_class=1 --steps=500 --workdir=runs/quickstart

Writes distilled.npz, metrics.jsonl, config.json, preprocessing.npz, support.png,
checkpoints/ and tb/ (TensorBoard) into --workdir; rerunning the command resumes (also
after SIGKILL; SIGTERM checkpoints and exits with status 143). While it runs, the workdir
holds the lock file tfkip.lock: a second run on it exits with status 2 naming the owner
(docs/reliability.md).

Validation and the best set (--validation_size, --early_stopping_patience: WORKDIR/best/),
a wall-clock budget (--max_time) and time snapshots (--snapshot_every_seconds):
docs/distill.md.

  python launch/distill.py --validation_size=500 --early_stopping_patience=10 \
      --max_time=600 --workdir=runs/budget ...

Distributed (same results, see tests/train):

  python launch/distill.py --strategy=mirrored --num_cpu_devices=2 ...   # 2 CPU replicas
  TF_CONFIG='{"cluster": {"worker": ["host1:2222", "host2:2222"]},
              "task": {"type": "worker", "index": 0}}' \
      python launch/distill.py --strategy=multi_worker_mirrored --workdir=gs://... ...
  python launch/distill.py --strategy=tpu --tpu=local --dtype=float32 \
      --data_dir=gs://... --workdir=gs://... ...       # Cloud TPU VM: docs/cloud_tpu.md
"""

import time

STARTED = time.monotonic()  # --max_time counts from here (before TensorFlow's import)

from tfkip.runtime.logs import quiet_startup  # noqa: E402

quiet_startup()  # before TensorFlow loads: hides its C++ start-up lines (--verbosity=1 shows)

import distill_flags  # noqa: E402
from absl import flags, logging  # noqa: E402

from tfkip.runtime import cli  # noqa: E402
from tfkip.runtime import lock as runtime_lock  # noqa: E402
from tfkip.train.distill import run_distillation  # noqa: E402
from tfkip.train.guard import ON_NONFINITE  # noqa: E402

flags.adopt_module_key_flags(distill_flags)  # --help lists every flag of the run
_ON_NONFINITE = flags.DEFINE_enum(
    "on_nonfinite",
    "stop",
    list(ON_NONFINITE),
    "A KIP step whose loss or support becomes NaN/inf is never applied; then 'stop' ends "
    "the run with one line naming the step (the last checkpoint and distilled.npz stay as "
    "they were), 'lower_lr' halves the learning rate and goes on (at most 5 times).",
)


def main(argv):
    del argv
    config = distill_flags.config_from_flags()
    chief = runtime_lock.chief_from_environment(config.strategy)
    with cli.own(config.workdir, chief=chief, checkpoints="checkpoints"):
        record = run_distillation(config, on_nonfinite=_ON_NONFINITE.value, started=STARTED)
    logging.info("final: %s", record)


if __name__ == "__main__":
    cli.run(main)
