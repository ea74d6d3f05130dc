r"""KIP: distil a dataset into a few support images for an infinite-width kernel.

Quickstart (bundled MNIST sample, no download; a few minutes on 2 CPU cores):

  python launch/distill.py --dataset=mnist_5k --architecture=fc --depth=1 \
      --support_per_class=1 --steps=500 --workdir=runs/quickstart

Writes distilled.npz, metrics.jsonl, config.json, preprocessing.npz, support.png,
checkpoints/ and tb/ (TensorBoard) into --workdir; rerunning the command resumes.
"""

import distill_flags
from absl import app, logging

from tfkip.train.distill import run_distillation


def main(argv):
    del argv
    record = run_distillation(distill_flags.config_from_flags())
    logging.info("final: %s", record)


if __name__ == "__main__":
    app.run(main)
