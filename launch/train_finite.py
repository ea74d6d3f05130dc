r"""Trains a finite network on a distilled set and tests it on the real test split.

The default recipe keeps what the kernel learned: the standard-parameterized network,
centred (f - f_init, the frozen initial copy inside model.keras), no L2, 1000 steps of SGD
momentum 0.9 with cosine decay from the empirical-NTK maximum learning rate, MSE on the
centred labels, batch 100 (why standard, not NTK: `tfkip.transfer.recipes`).
``--recipe=reference`` is kip/nn_training exactly (spec §4: standard parameterization, not
centred, L2 1e-3, 5000 steps). The test split is preprocessed like
the distilled images (read from the run's config.json; a mismatch is refused).

  python launch/train_finite.py --distilled=/tmp/kip_run --workdir=/tmp/finite
  python launch/train_finite.py --distilled=/tmp/kip_run --workdir=/tmp/finite_ref \
      --recipe=reference
  python launch/train_finite.py --distilled=ConvNet_ssize100_zca_nol_noaug_ckpt1000.npz \
      --dataset=cifar10 --architecture=convnet --depth=3 --workdir=/tmp/finite
  python launch/train_finite.py --distilled=/tmp/kip_run --workdir=/tmp/search --search \
      --lr_factor_grid=0.5,1,2 --l2_grid=0,1e-3 --validation_size=500 --parallel=2

Writes ``metrics.json`` (test_accuracy, test_loss, learning_rate, seconds_per_step, ...),
``model.keras`` (loads with plain ``keras.models.load_model``) and TensorBoard logs in
``tb/`` to --workdir; with --search: ``search.jsonl`` (one row per setting, validation
metrics; a rerun resumes), ``hparams/`` (TensorBoard HParams), ``search_result.json`` and
``best/``. Bad input prints one ``error: ...`` line naming the value (``--debug`` for
the traceback). Cost on 2 CPU cores with 10 MNIST images: FC width 1024 ~0.01-0.02 s per step,
Conv depth 2 width 256 ~0.1 s, ConvNet depth 3 width 128 ~0.1 s; the reference
width-1024 ConvNet took ~2,000 s for 5,000 steps on one accelerator (spec §8).
"""

from tfkip.runtime.logs import quiet_startup

quiet_startup()  # before TensorFlow loads: hides its C++ start-up lines (--verbosity=1 shows)

import json  # noqa: E402

import finite_flags  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from tfkip.runtime import cli  # noqa: E402
from tfkip.runtime import lock as runtime_lock  # noqa: E402
from tfkip.train import get_strategy  # noqa: E402

FLAGS = flags.FLAGS
flags.adopt_module_key_flags(finite_flags)  # --help lists every flag
flags.adopt_module_key_flags(cli)  # --debug


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    chief = runtime_lock.chief_from_environment(FLAGS.strategy)
    with cli.own(FLAGS.workdir, chief=chief):
        _run()


def _run() -> None:
    strategy = get_strategy(FLAGS.strategy, FLAGS.tpu, FLAGS.num_cpu_devices)
    if FLAGS.search:
        from tfkip.transfer.search import search  # after the devices are configured

        result = search(finite_flags.search_config_from_flags(), strategy)
        best = result["best"]
        print(
            f"best={best['key']} validation_accuracy={best['validation_accuracy']:.4f} "
            f"test_accuracy={result['test_accuracy']:.4f} settings={result['num_settings']} "
            f"seconds={result['seconds']:.1f}"
        )
        return
    from tfkip.transfer import train

    metrics = train(finite_flags.train_config_from_flags(), strategy)
    logging.info("metrics: %s", json.dumps({k: v for k, v in metrics.items() if k != "config"}))
    print(
        f"test_accuracy={metrics['test_accuracy']:.4f} test_loss={metrics['test_loss']:.4f} "
        f"learning_rate={metrics['learning_rate']:.6g} "
        f"seconds_per_step={metrics['seconds_per_step']:.4f}"
    )


if __name__ == "__main__":
    flags.mark_flags_as_required(["distilled", "workdir"])
    cli.run(main)  # a bad value prints one 'error: ...' line (--debug: the traceback)
