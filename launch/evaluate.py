r"""Evaluates a distilled set: KRR test accuracy and MSE in the set's own preprocessing.

  # a run folder: reports exactly what the run reported for its last set
  python launch/evaluate.py --distilled=runs/quickstart --output=/tmp/eval.json
  # its best set (a run with --validation_size), with the exact NNGP whatever it used
  python launch/evaluate.py --distilled=runs/quickstart --which=best --kernel=nngp
  # a published set (gs://kip-datasets; needs network access and the TFDS dataset)
  python launch/evaluate.py \
      --distilled=released:kip/cifar10/ConvNet_ssize100_zca_nol_noaug_ckpt1000
  # an old-layout published file (no architecture in its name), from a local mirror
  python launch/evaluate.py --released_root=/data/kip-datasets --architecture=convnet \
      --distilled=released:kip/cifar10/ssize10_zca_l_noaug_ckpt0
  # a tfkip export (.npz + sidecar, TFRecord, TFDS folder) or any KIP-named .npz
  python launch/evaluate.py --distilled=/tmp/release/fc_ssize10_nozca_nol_noaug_ckpt500.npz

Prints a summary (and the run's / index's own numbers beside the result) and writes
--output as JSON: test_accuracy, test_mse, kernel, reg, network, preprocessing, source.
Cost: one kernel between the support set and the test split (FC: seconds; the paper-2
ConvNet on 10,000 CIFAR-10 test images: hours on CPU, use --max_test_examples to try).
"""

from tfkip.runtime.logs import quiet_startup

quiet_startup()  # before TensorFlow loads: hides its C++ start-up lines (--verbosity=1 shows)

import contextlib  # noqa: E402
import json  # noqa: E402

from absl import flags  # noqa: E402

from tfkip import architectures  # noqa: E402
from tfkip.evaluate import (  # noqa: E402
    KERNELS,
    PREPROCESSINGS,
    WHICH,
    ZCA_FITS,
    EvaluateConfig,
    evaluate_distilled,
)
from tfkip.kernels.tiling import DEFAULT_MEMORY_BUDGET  # noqa: E402
from tfkip.runtime import cli  # noqa: E402
from tfkip.sets.released import RELEASED_ROOT  # noqa: E402
from tfkip.train import STRATEGIES  # noqa: E402

_F = {}


def _flag(kind, name, default, help_text, *args):
    _F[name] = getattr(flags, f"DEFINE_{kind}")(name, default, *args, help_text)


_flag(
    "string",
    "distilled",
    None,
    "The set: a run folder, an .npz (tfkip export or named like the published sets), a "
    "TFRecord export, a TFDS export folder (DATA_DIR/NAME/VERSION), or a published set "
    "'released:kip/DATASET/NAME', gs://kip-datasets/... or https://storage.googleapis.com/"
    "kip-datasets/....",
)
_flag(
    "enum",
    "which",
    "final",
    "Which set of a run folder: 'final' (distilled.npz) or 'best' (best/, the set of lowest "
    "validation loss of a run with --validation_size).",
    list(WHICH),
)
_flag("string", "dataset", None, "Dataset whose test split is used; default the set's own.")
_flag("string", "data_dir", None, "tensorflow-datasets data_dir of --dataset.")
_flag("bool", "download", True, "Let tensorflow-datasets download a missing --dataset.")
_flag(
    "enum",
    "architecture",
    None,
    "Kernel architecture; default the set's (needed for old-layout published names).",
    list(architectures.NAMES),
)
_flag("integer", "depth", None, "Network depth; default the set's, else the preset's.")
_flag("integer", "width", None, "Network width (only matters for 'standard').")
_flag("float", "W_std", None, "Weight standard deviation; default the set's, else sqrt(2).")
_flag("float", "b_std", None, "Bias standard deviation; default the set's, else 0.1.")
_flag("string", "parameterization", None, "'ntk' or 'standard'; default the set's, else ntk.")
_flag("string", "activation", None, "Nonlinearity; default the set's, else relu.")
_flag(
    "enum",
    "kernel",
    None,
    "Exact kernel of the ridge regression; default the one the set was distilled with (a "
    "random-feature run, --kernel=rf_nngp: the nngp it estimates; published sets: ntk), "
    "else ntk.",
    list(KERNELS),
)
_flag("float", "reg", None, "Trace-scaled KRR ridge; default the run's, else 1e-6.")
_flag(
    "enum",
    "preprocessing",
    "auto",
    "How raw test images map into the set's space: 'auto' (the set's own metadata, else "
    "rebuilt from its name), or force a rebuild with 'standardize' or 'zca'.",
    list(PREPROCESSINGS),
)
_flag(
    "enum",
    "zca_fit",
    "nn_training",
    "Images a rebuilt ZCA is fitted on: 'nn_training' (the train split minus its last "
    "5,000 images, as nn_training.ipynb does) or 'all' train images.",
    list(ZCA_FITS),
)
_flag("float", "zca_reg", 0.1, "Relative regulariser of a rebuilt ZCA (nn_training: 0.1).")
_flag(
    "string",
    "released_root",
    RELEASED_ROOT,
    "Where published sets and their indexes (kip/kip.csv, ls/ls.csv) live; a local folder "
    "with the bucket's layout works the same.",
)
_flag("bool", "lookup_index", True, "Show the index's test_acc beside a published set's.")
_flag("float", "timeout", 60.0, "Seconds allowed for each remote file access before an error.")
_flag("enum", "dtype", None, "Precision; default the run's, else float64.", ["float32", "float64"])
_flag("enum", "strategy", "default", "tf.distribute strategy (see distill.py).", list(STRATEGIES))
_flag("string", "tpu", None, "TPU name or address for --strategy=tpu.")
_flag("integer", "num_cpu_devices", None, "Split the CPU into this many logical devices.")
_flag("integer", "eval_tile", None, "Test images per replica per call; default the run's.")
_flag(
    "integer",
    "kernel_batch_size",
    None,
    "Kernel tile size; default the run's (tiles planned from the memory budget).",
)
_flag(
    "integer",
    "kernel_memory_mib",
    None,
    "MiB one kernel tile may use when tiles are planned; default the run's, else "
    f"{DEFAULT_MEMORY_BUDGET // 2**20}.",
)
_flag(
    "integer",
    "max_test_examples",
    None,
    "Use only N test images (a quick look): a deterministic class-balanced subset, the first "
    "images of every class in turn (N // classes or one more of each).",
)
_flag(
    "bool",
    "jit_compile",
    None,
    "Compile the evaluation with XLA (faster on big test splits; compiling a pooled ConvNet "
    "kernel takes tens of seconds on CPU); default as the run did, else true.",
)
_flag("string", "output", None, "Write the result here as JSON (local or gs://).")


def config_from_flags() -> EvaluateConfig:
    if not _F["distilled"].value:
        raise ValueError("--distilled is required: a run folder, an .npz, ... (see --help).")
    return EvaluateConfig(**{name: holder.value for name, holder in _F.items() if name != "output"})


def _summary(r: dict) -> str:
    net = r["network"]
    prep = r["preprocessing"]
    lines = [
        f"set: {r['source']} ({r['which']}; {r['source_kind']}, {r['support_size']} images)",
        f"test split: {r['dataset']}, {r['test_examples']} images",
        f"kernel: {r['kernel']} of {net['architecture']} (depth {net['depth']}), "
        f"reg {r['reg']:g}, {r['dtype']}",
        f"preprocessing: {'zca' if prep.get('zca') else 'standardize'} ({prep.get('from')})",
        f"test accuracy {r['test_accuracy']:.4f}, test mse {r['test_mse']:.6f}",
        f"kernel pairs: {r['test_examples'] * r['support_size']} at "
        f"{r['pairs_per_second']:.1f} pairs/s (compilation included)",
    ]
    rep = r.get("reported")
    if rep and rep.get("test_accuracy") is not None:
        mse = "" if rep.get("test_mse") is None else f", test mse {rep['test_mse']:.6f}"
        lines.append(
            f"reported ({rep['from']}, step {rep.get('step')}): "
            f"test accuracy {rep['test_accuracy']:.4f}{mse}"
        )
    if r.get("index"):
        lines.append(f"index: test_acc {r['index']['test_acc']}, test_mse {r['index']['test_mse']}")
    elif r.get("index_error"):
        lines.append(f"index: not read ({r['index_error']})")
    return "\n".join(lines)


def main(argv):
    del argv
    import tensorflow as tf

    output = _F["output"].value
    # --output's lock (OUTPUT.lock) for the whole run: one writer per result file.
    owned = cli.own(output, is_file=True) if output else contextlib.nullcontext()
    with owned:
        result = evaluate_distilled(config_from_flags())
        print(_summary(result), flush=True)
        if output:
            with tf.io.gfile.GFile(output, "w") as f:
                f.write(json.dumps(result, indent=2, sort_keys=True) + "\n")
            print(f"wrote {output}")


if __name__ == "__main__":
    cli.run(main)
