r"""Label Solve: the closed-form best labels for natural class-balanced support images.

  python launch/label_solve.py --dataset=mnist_5k --architecture=fc --depth=1 \
      --support_per_class=1 --workdir=runs/label_solve

metrics.jsonl gets one line with "labels": "natural" and one with "labels": "solved" (with
"label_solve_seconds"; --eval_every=0: only that line, no evaluation, see docs/distill.md);
distilled.npz holds the natural images with the solved labels. KIP-only flags (--steps,
--learning_rate, --learn_labels, --augment, ...) are accepted and ignored.
"""

import distill_flags
from absl import flags, logging

from tfkip import cli
from tfkip.train.distill import run_label_solve

flags.adopt_module_key_flags(distill_flags)  # --help lists every flag of the run


def main(argv):
    del argv
    for record in run_label_solve(distill_flags.config_from_flags()):
        logging.info("%s", record)


if __name__ == "__main__":
    cli.run(main)
