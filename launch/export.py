r"""Exports a distilled set (a distill workdir or an .npz) as TFRecord, TFDS or KIP npz.

Writes a PNG grid of the support set (one row per class) next to the export.

  python launch/export.py --distilled=/tmp/kip_run --format=npz --output=/tmp/release
  python launch/export.py --distilled=/tmp/kip_run --format=tfrecord \
      --output=/tmp/out/kip.tfrecord --num_shards=4 --compression=GZIP
  python launch/export.py --distilled=/tmp/kip_run --format=tfds --data_dir=/tmp/tfds \
      --name=kip_cifar10_demo

Cost: seconds on CPU (the sets are small).
"""

from tfkip.runtime.logs import quiet_startup

quiet_startup()  # before TensorFlow loads: hides its C++ start-up lines (--verbosity=1 shows)

from absl import app, flags, logging  # noqa: E402

from tfkip import sets  # noqa: E402
from tfkip.runtime import cli  # noqa: E402

_DISTILLED = flags.DEFINE_string(
    "distilled", None, "Distillation workdir (distilled.npz, config.json, ...) or an .npz."
)
_FORMAT = flags.DEFINE_enum(
    "format",
    None,
    list(sets.FORMATS),
    "Export format: TFRecord shards + JSON sidecar, a TFDS dataset, or a KIP-named .npz.",
)
_OUTPUT = flags.DEFINE_string(
    "output",
    None,
    "tfrecord: record path; npz: output folder (catalog.csv is refreshed there); "
    "tfds: data_dir if --data_dir is not given.",
)
_NUM_SHARDS = flags.DEFINE_integer("num_shards", 1, "tfrecord: number of shard files.")
_COMPRESSION = flags.DEFINE_enum(
    "compression", "NONE", ["NONE", "GZIP", "ZLIB"], "tfrecord: compression of the records."
)
_NAME = flags.DEFINE_string(
    "name", None, "tfds: dataset name (snake_case); default derived from the metadata."
)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "tfds: TFDS data_dir (default --output).")
_VERSION = flags.DEFINE_string("version", "1.0.0", "tfds: dataset version X.Y.Z.")
_GRID = flags.DEFINE_bool("grid", True, "Also write a PNG grid of the support set.")
_MAX_PER_CLASS = flags.DEFINE_integer("max_per_class", 10, "Images per class in the PNG.")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    output = _DATA_DIR.value if _FORMAT.value == "tfds" and _DATA_DIR.value else _OUTPUT.value
    if not output:
        raise app.UsageError("--output (or --data_dir for --format=tfds) is required.")
    # A TFRecord export is a file (its lock: OUTPUT.lock); npz and tfds write into a folder.
    with cli.own(output, is_file=_FORMAT.value == "tfrecord"):
        written = sets.export_distilled(
            _DISTILLED.value,
            _FORMAT.value,
            output,
            num_shards=_NUM_SHARDS.value,
            compression=None if _COMPRESSION.value == "NONE" else _COMPRESSION.value,
            name=_NAME.value,
            version=_VERSION.value,
            grid=_GRID.value,
            max_per_class=_MAX_PER_CLASS.value,
        )
    for kind, path in written.items():
        logging.info("Wrote %s: %s", kind, path)
        print(f"{kind}: {path}")


if __name__ == "__main__":
    flags.mark_flags_as_required(["distilled", "format"])
    cli.run(main)
