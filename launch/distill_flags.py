"""absl flags describing a KIP / Label Solve run (shared by distill.py and label_solve.py)."""

import math

import common_flags  # noqa: F401  (defines --strategy, --tpu, ...)
from absl import flags

from tfkip import architectures
from tfkip.kernels.tiling import DEFAULT_MEMORY_BUDGET
from tfkip.train.config import EXACT_DEFAULTS, RF_DEFAULTS, DistillConfig

FLAGS = flags.FLAGS
# A script's --help lists its key flags; launch scripts adopt these (and common_flags').
flags.adopt_module_key_flags(common_flags)

flags.DEFINE_string(
    "dataset",
    "mnist_5k",
    "Dataset: 'mnist_5k' (bundled, no download), any tensorflow-datasets image "
    "classification name (mnist, fashion_mnist, cifar10, cifar100, svhn_cropped, ...), or "
    "'npz:PATH' (x_train/y_train/x_test/y_test, or images/labels).",
)
flags.DEFINE_string("data_dir", None, "tensorflow-datasets data_dir (local path or gs://).")
flags.DEFINE_enum(
    "architecture",
    "fc",
    list(architectures.NAMES),
    "Kernel architecture preset: fc, conv (3x3 convs + Flatten), convnet (paper-2 ConvNet), "
    "convnet3, myrtle.",
)
flags.DEFINE_integer(
    "depth",
    None,
    "Depth: hidden layers (fc, conv), pooling blocks (convnet, convnet3) or 5/7/10 (myrtle). "
    "Default: the preset's.",
)
flags.DEFINE_integer("width", 1024, "Width (matters only with --parameterization=standard).")
flags.DEFINE_float("W_std", math.sqrt(2.0), "Weight standard deviation of every layer.")
flags.DEFINE_float("b_std", 0.1, "Bias standard deviation of every layer.")
flags.DEFINE_enum("parameterization", "ntk", ["ntk", "standard"], "Network parameterization.")
flags.DEFINE_enum("activation", "relu", ["relu", "erf"], "Nonlinearity of every hidden layer.")
flags.DEFINE_enum(
    "kernel",
    "ntk",
    ["ntk", "nngp", "rf_nngp"],
    "Kernel: the exact infinite-width 'ntk' or 'nngp', or 'rf_nngp', the NNGP estimated from "
    "--rf_models random finite networks of width --rf_width, new ones every step (RFAD; "
    "much cheaper per step for ConvNets: docs/random_features.md).",
)
flags.DEFINE_integer("rf_models", 4, "With --kernel=rf_nngp: random networks per step.")
flags.DEFINE_integer(
    "rf_width", 32, "With --kernel=rf_nngp: channels / units of every hidden layer."
)
flags.DEFINE_integer(
    "rf_seed", None, "With --kernel=rf_nngp: seed of the random networks (default --seed)."
)
flags.DEFINE_enum(
    "rf_dtype",
    None,
    ["float32", "float64", "bfloat16"],
    "With --kernel=rf_nngp: dtype of the random networks' forward passes (default --dtype); "
    "bfloat16 uses the bfloat16 units of CPUs with AVX512-BF16 and of TPUs (faster, at ~1% "
    "error on the kernel, below its sampling error).",
)
flags.DEFINE_enum(
    "loss",
    None,
    ["mse", "platt"],
    "KIP loss: 'mse' (KIP) or 'platt' (cross-entropy of the KRR predictions times a learned "
    f"temperature, RFAD). Default: {EXACT_DEFAULTS['loss']} (exact kernels), "
    f"{RF_DEFAULTS['loss']} (rf_nngp).",
)
flags.DEFINE_enum(
    "solve_dtype",
    None,
    ["float32", "float64"],
    "dtype of the KRR solve (default: float64 with --kernel=rf_nngp except on TPU, else --dtype).",
)
flags.DEFINE_integer(
    "support_per_class", 1, "Support images per class (support size = this x classes)."
)
flags.DEFINE_integer(
    "target_batch_size",
    None,
    "Class-balanced target images per KIP step (global batch). Default: "
    f"{EXACT_DEFAULTS['target_batch_size']} (exact kernels), "
    f"{RF_DEFAULTS['target_batch_size']} (rf_nngp).",
)
flags.DEFINE_float(
    "learning_rate",
    None,
    f"Adam learning rate. Default: {EXACT_DEFAULTS['learning_rate']} (exact kernels, as "
    f"KIP.ipynb), {RF_DEFAULTS['learning_rate']} (rf_nngp).",
)
flags.DEFINE_integer("steps", 500, "KIP steps; 0 writes the natural starting support set.")
flags.DEFINE_bool("learn_labels", False, "Also learn the support labels.")
flags.DEFINE_bool("zca", False, "ZCA-whiten the images (layer norm, relative reg --zca_reg).")
flags.DEFINE_float("zca_reg", 0.1, "Relative ZCA regulariser.")
flags.DEFINE_bool("augment", False, "Augment the support images in every KIP step.")
flags.DEFINE_string(
    "augmentations",
    "crop:4",
    "With --augment: comma-separated ops flip, translate[:F], rotate[:F], crop[:P].",
)
flags.DEFINE_float(
    "reg",
    None,
    "KRR ridge, relative to tr(K_ss)/n (Label Solve: reg/n). Default: "
    f"{EXACT_DEFAULTS['reg']} (exact kernels), {RF_DEFAULTS['reg']} (rf_nngp).",
)
flags.DEFINE_integer("seed", 0, "Seed of the support initialisation and target sampling.")
flags.DEFINE_integer(
    "eval_every",
    100,
    "Steps between in-run evaluations (test and validation; also at the start and end); 0: none.",
)
flags.DEFINE_enum("dtype", "float64", ["float64", "float32"], "Compute dtype (TPU: float32).")
flags.DEFINE_string("workdir", "runs/default", "Output folder (local or gs://); resumes.")
flags.DEFINE_integer(
    "kernel_batch_size", None, "Compute kernels in tiles of this many images (bounded memory)."
)
flags.DEFINE_integer(
    "kernel_memory_mib",
    None,
    "MiB one kernel tile may use when --kernel_batch_size is unset (default "
    f"{DEFAULT_MEMORY_BUDGET // 2**20}). A budget "
    "that holds the whole kernels leaves them untiled, which is faster (no recomputed "
    "forward pass) at more memory: a pooled ConvNet step needs about 11 covariance-sized "
    "copies per image pair (4 MiB per pair on 32x32 images, float32).",
)
flags.DEFINE_integer("eval_tile", 500, "Test images per replica per evaluation call.")


def config_from_flags() -> DistillConfig:
    """The `DistillConfig` that the flags describe."""
    return DistillConfig(**{name: FLAGS[name].value for name in DistillConfig.__dataclass_fields__})


flags.DEFINE_bool(
    "jit_compile",
    None,
    "Compile the KIP step with XLA. Default: yes, except with --kernel=rf_nngp off TPU, "
    "where TensorFlow's own (oneDNN) convolutions beat XLA's on CPU (TPUs always use XLA).",
)
flags.DEFINE_integer(
    "validation_size",
    0,
    "Train images held out of the targets (class balanced, a multiple of the classes, "
    "drawn from --seed) and scored at every evaluation (KRR loss and accuracy of the "
    "support); the set of lowest validation loss is kept in WORKDIR/best/. 0: none.",
)
flags.DEFINE_enum(
    "validation_kernel",
    "model",
    ["model", "exact"],
    "Kernel of the validation score: 'model' (the one the run distils with) or 'exact' "
    "(the infinite-width --kernel; the same for exact KIP).",
)
flags.DEFINE_enum(
    "eval_kernel",
    None,
    ["exact", "model"],
    "Kernel of the in-run test evaluation: 'exact' (the infinite-width --kernel; for "
    "--kernel=rf_nngp the NNGP it estimates) or 'model' (the run's own kernel: for "
    "rf_nngp its fixed evaluation twins, cheap). Default: 'exact' for exact kernels, "
    "'model' for rf_nngp (whose exact accuracy launch/evaluate.py --kernel=nngp gives). "
    "Test accuracy is only reported; it never chooses anything.",
)
flags.DEFINE_integer(
    "early_stopping_patience",
    0,
    "Stop after this many evaluations (not steps) in a row without a lower validation loss "
    "(needs --validation_size). 0: never.",
)
flags.DEFINE_float(
    "max_time",
    None,
    "Wall-clock budget in seconds from the command's start (start-up, compilation and "
    "evaluations included): the run then stops cleanly (checkpoint, distilled.npz, best/; "
    'metrics.jsonl\'s last record says "stopped": "max_time"). Default: none.',
)
flags.DEFINE_float(
    "snapshot_every_seconds",
    None,
    "Write the support to WORKDIR/snapshots/ at step 0 and every time this many more "
    "seconds of training loop (evaluations excluded) have run; snapshots.jsonl lists "
    "them with their seconds (time-to-accuracy curves). Default: none.",
)
