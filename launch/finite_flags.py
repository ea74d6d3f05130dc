"""absl flags of launch/train_finite.py: one transfer run, or a validation search."""

from absl import flags

from tfkip import architectures
from tfkip.train.strategy import STRATEGIES
from tfkip.transfer.recipes import RECIPES

FLAGS = flags.FLAGS

flags.DEFINE_string(
    "distilled", None, "A distillation workdir (distilled.npz + config.json) or an .npz."
)
flags.DEFINE_string("dataset", None, "Dataset of the test split; default: the run's config.json.")
flags.DEFINE_string("data_dir", None, "TFDS data directory; default: the run's config.json.")
flags.DEFINE_string(
    "architecture",
    None,
    f"Finite network, one of {architectures.NAMES} (any case); default: the run's. A "
    "different one than the run's is cross-architecture transfer.",
)
flags.DEFINE_integer("depth", None, "Network depth; default: the run's (or the preset's).")
flags.DEFINE_integer("width", 1024, "Hidden width / channels (reference: 1024).")
flags.DEFINE_enum(
    "recipe",
    "default",
    list(RECIPES),
    "'default': standard parameterization, centred network, no L2, 1000 steps (keeps the "
    "kernel's accuracy); 'reference': kip/nn_training exactly (standard parameterization, "
    "not centred, L2 1e-3, 5000 steps). Explicit --parameterization, --center, --l2, "
    "--steps override the recipe.",
)
flags.DEFINE_enum(
    "parameterization", None, ["standard", "ntk"], "Parameterization; default: the recipe's."
)
flags.DEFINE_bool(
    "center",
    None,
    "Train f(x) - f_init(x) (a frozen copy of the initial network subtracted; model.keras "
    "holds this centred model); default: the recipe's (--nocenter to turn it off).",
)
flags.DEFINE_float(
    "l2",
    None,
    "lambda of 0.5*lambda*sum(w^2) over the effective weights (the same penalty under "
    "both parameterizations); default: the recipe's.",
)
flags.DEFINE_integer(
    "steps", None, "Training steps (the cosine decay's length); default: the recipe's."
)
flags.DEFINE_enum(
    "loss", "mse", ["mse", "xent"], "0.5*MSE on centred labels, or softmax cross-entropy."
)
flags.DEFINE_integer("batch_size", 100, "Global batch size (the whole set if it has fewer images).")
flags.DEFINE_float(
    "learning_rate", None, "Initial learning rate; default: the empirical-NTK estimate."
)
flags.DEFINE_float("max_lr_factor", 1.0, "Multiplies the empirical-NTK learning-rate estimate.")
flags.DEFINE_integer(
    "ntk_num_inputs",
    50,
    "Held-out train images (and, except in the reference recipe, distilled images) used for "
    "the learning-rate estimate; the smaller of the two estimates is used.",
)
flags.DEFINE_integer(
    "ntk_batch_size", 10, "Jacobian tile of the estimate (lower it for large networks)."
)
flags.DEFINE_integer("seed", 0, "Initialisation and shuffling seed.")
flags.DEFINE_string(
    "workdir",
    None,
    "Output folder: metrics.json, model.keras, tb/, backup/ (with --search: search.jsonl, "
    "hparams/, search_result.json, best/).",
)
flags.DEFINE_integer("verbose", 1, "Keras verbosity: 0 silent, 1 progress bar.")
flags.DEFINE_enum(
    "strategy",
    "default",
    list(STRATEGIES),
    "tf.distribute strategy: default, one_device, mirrored (GPUs, else --num_cpu_devices "
    "CPUs), multi_worker_mirrored (TF_CONFIG), tpu.",
)
flags.DEFINE_string("tpu", None, "TPU name or address for --strategy=tpu.")
flags.DEFINE_integer(
    "num_cpu_devices", None, "Split the CPU into this many logical devices (mirrored on CPU)."
)
flags.DEFINE_integer(
    "steps_per_loop", 1, "Training steps per compiled call (Keras steps_per_execution)."
)
flags.DEFINE_integer(
    "checkpoint_every",
    0,
    "Steps per Keras epoch; at each epoch end the run is backed up to workdir/backup "
    "(a restarted run resumes from it) and TensorBoard logs. 0: a single epoch. Must "
    "divide --steps.",
)
# The search.
flags.DEFINE_bool(
    "search",
    False,
    "Grid-search lr factor x L2 x centring x parameterization on a validation split held "
    "out from the train split, then test the best setting. Rerunning resumes.",
)
flags.DEFINE_list("lr_factor_grid", ["0.5", "1", "2"], "--search: factors of the NTK lr.")
flags.DEFINE_list("l2_grid", ["0", "1e-4", "1e-3"], "--search: L2 strengths.")
flags.DEFINE_list("center_grid", ["true", "false"], "--search: centring on/off.")
flags.DEFINE_list("parameterization_grid", ["ntk", "standard"], "--search: parameterizations.")
flags.DEFINE_integer(
    "validation_size",
    500,
    "--search: validation images held out from the train split (the last images of "
    "each class, in proportion to its size).",
)
flags.DEFINE_integer(
    "parallel",
    1,
    "--search: settings run at once in worker processes (default strategy only; one GPU "
    "each if there are GPUs). With a distributed --strategy settings run one by one.",
)

_TRUE, _FALSE = ("true", "1", "yes", "t"), ("false", "0", "no", "f")


def _floats(name: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in FLAGS[name].value)
    except ValueError:
        raise ValueError(
            f"--{name} must be comma-separated numbers. Received: {name}={FLAGS[name].value}"
        ) from None


def _bools(name: str) -> tuple[bool, ...]:
    out = []
    for value in FLAGS[name].value:
        if value.lower() not in _TRUE + _FALSE:
            raise ValueError(f"--{name} takes true/false values. Received: {name}={value!r}")
        out.append(value.lower() in _TRUE)
    return tuple(out)


def train_config_from_flags():
    """The `tfkip.finite.TrainConfig` that the flags describe."""
    from tfkip.transfer import TrainConfig

    names = (
        "distilled dataset data_dir architecture depth width recipe parameterization center "
        "l2 steps loss batch_size learning_rate max_lr_factor ntk_num_inputs ntk_batch_size "
        "seed workdir steps_per_loop checkpoint_every verbose"
    ).split()
    return TrainConfig(**{name: FLAGS[name].value for name in names})


def search_config_from_flags():
    """The `tfkip.transfer.search.SearchConfig` that the flags describe."""
    from tfkip.transfer.search import SearchConfig

    return SearchConfig(
        base=train_config_from_flags(),
        workdir=FLAGS.workdir,
        lr_factors=_floats("lr_factor_grid"),
        l2s=_floats("l2_grid"),
        centers=_bools("center_grid"),
        parameterizations=tuple(FLAGS.parameterization_grid),
        validation_size=FLAGS.validation_size,
        parallel=FLAGS.parallel,
    )
