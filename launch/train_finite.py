r"""Trains a finite network on a distilled set and tests it on the real test split.

The reference transfer recipe (spec §4, ``kip/nn_training.ipynb``): MSE on the centred
labels, L2 1e-3, SGD momentum 0.9 with cosine decay from the empirical-NTK maximum
learning rate, batch 100; the test split is preprocessed like the distilled images (read
from the run's config.json; a mismatch is refused).

  python launch/train_finite.py --distilled=/tmp/kip_run --workdir=/tmp/finite \
      --width=128 --steps=1000
  python launch/train_finite.py --distilled=ConvNet_ssize100_zca_nol_noaug_ckpt1000.npz \
      --dataset=cifar10 --architecture=convnet --depth=3 --workdir=/tmp/finite
  python launch/train_finite.py --distilled=/tmp/kip_run --workdir=/tmp/finite \
      --strategy=mirrored --num_cpu_devices=2

Writes ``metrics.json`` (test_accuracy, test_loss, learning_rate, seconds_per_step, ...),
``model.keras`` and TensorBoard logs in ``tb/`` to --workdir. Cost, measured on 2 CPU
cores with 10 MNIST images: FC width 1024 ~0.005 s per step, Conv depth 2 width 128
~0.05 s per step, ConvNet depth 3 width 64 ~0.04 s per step; the reference width-1024
ConvNet took ~2,000 s for 5,000 steps on one accelerator (spec §8).
"""

from absl import app, flags, logging

from tfkip import architectures
from tfkip.train import STRATEGIES, get_strategy

_DISTILLED = flags.DEFINE_string(
    "distilled", None, "A distillation workdir (distilled.npz + config.json) or an .npz."
)
_DATASET = flags.DEFINE_string(
    "dataset", None, "Dataset of the test split; default: the run's config.json."
)
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "TFDS data directory; default: the run's config.json."
)
_ARCHITECTURE = flags.DEFINE_string(
    "architecture",
    None,
    f"Finite network, one of {architectures.NAMES} (any case); default: the run's.",
)
_DEPTH = flags.DEFINE_integer("depth", None, "Network depth; default: the run's (or preset).")
_WIDTH = flags.DEFINE_integer("width", 1024, "Hidden width / channels (reference: 1024).")
_PARAMETERIZATION = flags.DEFINE_enum(
    "parameterization", "standard", ["standard", "ntk"], "Parameterization (reference: standard)."
)
_LOSS = flags.DEFINE_enum(
    "loss", "mse", ["mse", "xent"], "0.5*MSE on centred labels, or softmax cross-entropy."
)
_STEPS = flags.DEFINE_integer("steps", 5000, "Training steps (the cosine decay's length).")
_BATCH_SIZE = flags.DEFINE_integer(
    "batch_size", 100, "Global batch size (the whole set if it has fewer images)."
)
_LEARNING_RATE = flags.DEFINE_float(
    "learning_rate", None, "Initial learning rate; default: the empirical-NTK estimate."
)
_MAX_LR_FACTOR = flags.DEFINE_float(
    "max_lr_factor", 1.0, "Multiplies the empirical-NTK learning-rate estimate."
)
_L2 = flags.DEFINE_float("l2", 1e-3, "lambda of the 0.5*lambda*sum(params^2) penalty.")
_NTK_NUM_INPUTS = flags.DEFINE_integer(
    "ntk_num_inputs", 50, "Held-out train images used for the learning-rate estimate."
)
_NTK_BATCH_SIZE = flags.DEFINE_integer(
    "ntk_batch_size", 10, "Jacobian tile of the estimate (lower it for large networks)."
)
_SEED = flags.DEFINE_integer("seed", 0, "Initialisation and shuffling seed.")
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Output folder: metrics.json, model.keras, tb/, backup/."
)
_STRATEGY = flags.DEFINE_enum("strategy", "default", list(STRATEGIES), "Distribution strategy.")
_TPU = flags.DEFINE_string("tpu", None, "TPU name or address for --strategy=tpu.")
_NUM_CPU_DEVICES = flags.DEFINE_integer(
    "num_cpu_devices", None, "Split the CPU into this many logical devices (mirrored on CPU)."
)
_STEPS_PER_LOOP = flags.DEFINE_integer(
    "steps_per_loop", 1, "Training steps per compiled call (Keras steps_per_execution)."
)
_CHECKPOINT_EVERY = flags.DEFINE_integer(
    "checkpoint_every",
    0,
    "Steps per Keras epoch; at each epoch end the run is backed up to workdir/backup "
    "(a restarted run resumes from it) and TensorBoard logs. 0: a single epoch. Must "
    "divide --steps.",
)
_CENTER = flags.DEFINE_bool(
    "center",
    False,
    "Train f(x) - f_init(x) (a frozen copy of the initial network subtracted); not in the "
    "reference recipe.",
)
_VERBOSE = flags.DEFINE_integer("verbose", 1, "Keras verbosity: 0 silent, 1 progress bar.")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    strategy = get_strategy(_STRATEGY.value, _TPU.value, _NUM_CPU_DEVICES.value)
    from tfkip.finite import TrainConfig, train  # after the devices are configured

    config = TrainConfig(
        distilled=_DISTILLED.value,
        dataset=_DATASET.value,
        data_dir=_DATA_DIR.value,
        architecture=_ARCHITECTURE.value,
        depth=_DEPTH.value,
        width=_WIDTH.value,
        parameterization=_PARAMETERIZATION.value,
        loss=_LOSS.value,
        center=_CENTER.value,
        l2=_L2.value,
        steps=_STEPS.value,
        batch_size=_BATCH_SIZE.value,
        learning_rate=_LEARNING_RATE.value,
        max_lr_factor=_MAX_LR_FACTOR.value,
        ntk_num_inputs=_NTK_NUM_INPUTS.value,
        ntk_batch_size=_NTK_BATCH_SIZE.value,
        seed=_SEED.value,
        workdir=_WORKDIR.value,
        steps_per_loop=_STEPS_PER_LOOP.value,
        checkpoint_every=_CHECKPOINT_EVERY.value,
        verbose=_VERBOSE.value,
    )
    metrics = train(config, strategy)
    logging.info("metrics: %s", {k: v for k, v in metrics.items() if k != "config"})
    print(
        f"test_accuracy={metrics['test_accuracy']:.4f} test_loss={metrics['test_loss']:.4f} "
        f"learning_rate={metrics['learning_rate']:.6g} "
        f"seconds_per_step={metrics['seconds_per_step']:.4f}"
    )


if __name__ == "__main__":
    flags.mark_flags_as_required(["distilled", "workdir"])
    __import__("tfkip.cli").cli.run(main)  # bad input -> one "error: ..." line
