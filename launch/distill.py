r"""KIP: distil a dataset into a few support images for an infinite-width kernel.

Quickstart (bundled MNIST sample, no download; a few minutes on 2 CPU cores):

  python launch/distill.py --dataset=mnist_5k --architecture=fc --depth=1 \
      --support_per_class=1 --steps=500 --workdir=runs/quickstart

Writes distilled.npz, metrics.jsonl, config.json, preprocessing.npz, support.png,
checkpoints/ and tb/ (TensorBoard) into --workdir; rerunning the command resumes (also
after SIGKILL; SIGTERM checkpoints and exits with status 143).

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
      --data_dir=gs://... --workdir=gs://... ...       # Cloud TPU VM: launch/cloud_tpu.md
"""

import time

STARTED = time.monotonic()  # --max_time counts from here (before TensorFlow's import)

import distill_flags  # noqa: E402
from absl import flags, logging  # noqa: E402

from tfkip import cli  # noqa: E402
from tfkip.train.distill import run_distillation  # noqa: E402

flags.adopt_module_key_flags(distill_flags)  # --help lists every flag of the run


def main(argv):
    del argv
    record = run_distillation(distill_flags.config_from_flags(), started=STARTED)
    logging.info("final: %s", record)


if __name__ == "__main__":
    cli.run(main)
