r"""Label Solve: the closed-form best labels for natural class-balanced support images.

  python launch/label_solve.py --dataset=mnist_5k --architecture=fc --depth=1 \
      --support_per_class=1 --workdir=runs/label_solve

metrics.jsonl gets one line with "labels": "natural" and one with "labels": "solved" (with
"label_solve_seconds"; --eval_every=0: only that line, no evaluation, see docs/distill.md);
distilled.npz holds the natural images with the solved labels. KIP-only flags (--steps,
--learning_rate, --learn_labels, --augment, ...) are accepted and ignored.
"""

from tfkip.runtime.logs import quiet_startup

quiet_startup()  # before TensorFlow loads: hides its C++ start-up lines (--verbosity=1 shows)

import distill_flags  # noqa: E402
from absl import flags, logging  # noqa: E402

from tfkip.runtime import cli  # noqa: E402
from tfkip.runtime import lock as runtime_lock  # noqa: E402
from tfkip.train.label_solve import run_label_solve  # noqa: E402

flags.adopt_module_key_flags(distill_flags)  # --help lists every flag of the run


def main(argv):
    del argv
    config = distill_flags.config_from_flags()
    chief = runtime_lock.chief_from_environment(config.strategy)
    with cli.own(config.workdir, chief=chief):
        records = run_label_solve(config)
    for record in records:
        logging.info("%s", record)


if __name__ == "__main__":
    cli.run(main)
