"""Raw image-classification datasets: the bundled MNIST sample, npz files, and TFDS.

Every loader returns a :class:`RawDataset`: NHWC images exactly as stored (uint8 0..255
or float) and int64 class labels, split into train and test. Preprocessing (scaling,
standardisation, ZCA) lives in :mod:`tfkip.data.preprocess`.

Dataset names understood by :func:`load_dataset`:

* ``"mnist_5k"``: the 5,000-image MNIST sample shipped with tfkip (no download).
* ``"npz:PATH"``: a local or ``gs://`` npz file (see :func:`load_dataset`).
* any TensorFlow Datasets image-classification name, e.g. ``"mnist"``,
  ``"fashion_mnist"``, ``"cifar10"``, ``"cifar100"``, ``"svhn_cropped"``.
"""

from __future__ import annotations

import dataclasses
import io
import os

import numpy as np
import tensorflow as tf

__all__ = ["BUNDLED_DATASETS", "RawDataset", "load_dataset"]

#: Names of the datasets shipped inside the package.
BUNDLED_DATASETS = ("mnist_5k",)

_MNIST_5K_PATH = os.path.join(os.path.dirname(__file__), "assets", "mnist_5k.npz")
_MNIST_5K_TRAIN_PER_CLASS = 400
_KERAS_KEYS = ("x_train", "y_train", "x_test", "y_test")
_FLAT_KEYS = ("images", "labels")
_TEST_FRACTION = 0.2
_TFDS_NUMPY_BATCH = 8192

_HOW_TO_NAME = (
    "Specify a dataset as 'mnist_5k' (bundled sample), 'npz:PATH' (a local or gs:// "
    "npz file holding x_train/y_train/x_test/y_test or images/labels), or the name of "
    "a TensorFlow Datasets image classification builder such as 'mnist', "
    "'fashion_mnist', 'cifar10', 'cifar100' or 'svhn_cropped'."
)


@dataclasses.dataclass(frozen=True, eq=False)
class RawDataset:
    """An image-classification dataset before preprocessing.

    Attributes:
        name: the name it was loaded under, e.g. ``"cifar10"`` or ``"npz:/tmp/a.npz"``.
        x_train: train images, shape ``(N, H, W, C)``, uint8 0..255 or float, as stored.
        y_train: int64 class labels in ``[0, num_classes)``, shape ``(N,)``.
        x_test: test images, shape ``(M, H, W, C)`` with the same ``H, W, C``.
        y_test: int64 class labels, shape ``(M,)``.
        num_classes: number of classes ``K >= 2``.

    The constructor validates all of the above and raises ``ValueError`` otherwise.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    def __post_init__(self) -> None:
        if int(self.num_classes) < 2:
            raise ValueError(
                f"A dataset needs at least 2 classes. Received: num_classes={self.num_classes} "
                f"for dataset {self.name!r}."
            )
        for field in ("y_train", "y_test"):  # Any integer labels are stored as int64.
            y = getattr(self, field)
            if isinstance(y, np.ndarray) and np.issubdtype(y.dtype, np.integer):
                object.__setattr__(self, field, y.astype(np.int64, copy=False))
        for split, x, y in (
            ("train", self.x_train, self.y_train),
            ("test", self.x_test, self.y_test),
        ):
            _check_images(x, f"{self.name!r} {split} images")
            _check_labels(y, self.num_classes, f"{self.name!r} {split} labels")
            if x.shape[0] != y.shape[0]:
                raise ValueError(
                    f"Dataset {self.name!r} {split} split has {x.shape[0]} images but "
                    f"{y.shape[0]} labels; they must match. Received: x_{split}.shape={x.shape}, "
                    f"y_{split}.shape={y.shape}."
                )
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValueError(
                f"Dataset {self.name!r}: train and test images must have the same (H, W, C). "
                f"Received: x_train.shape={self.x_train.shape}, x_test.shape={self.x_test.shape}."
            )

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)`` of every image."""
        return tuple(int(s) for s in self.x_train.shape[1:])  # type: ignore[return-value]


def load_dataset(name: str, data_dir: str | None = None, download: bool = True) -> RawDataset:
    """Loads a dataset by name into memory as a :class:`RawDataset`.

    Args:
        name: ``"mnist_5k"``, ``"npz:PATH"`` or a TFDS builder name (optionally with
            ``:VERSION``).

            * ``mnist_5k``: the bundled sample (500 images per class); per class the
              first 400 images are train and the last 100 test (4,000 / 1,000).
            * ``npz:PATH``: PATH may be local or ``gs://`` (read via ``tf.io.gfile``).
              The file holds either ``x_train, y_train, x_test, y_test`` (the Keras
              datasets convention) or ``images, labels``; in the second case, per class,
              the last 20% of that class's images (at least 1) in file order are the
              test split, and the order within each split is the file order. Labels are
              int vectors or one-hot / centred one-hot matrices ``(N, K)`` (converted by
              argmax). Images of rank 3 ``(N, H, W)`` get a channel axis. An optional
              scalar ``num_classes`` entry fixes ``K``; otherwise ``K`` is the one-hot
              width or ``max(label) + 1``.
            * TFDS: loaded with ``as_supervised=True, shuffle_files=False`` from the
              ``train`` and ``test`` splits; ``K`` is the builder's
              ``info.features['label'].num_classes``.
        data_dir: TFDS data directory (TFDS names only).
        download: whether TFDS may download and prepare missing data (TFDS names only).
            Without network access pass ``False`` to fail at once instead of retrying.

    Returns:
        The dataset with images as stored (uint8 0..255 or float) and int64 labels.

    Raises:
        ValueError: unknown name; unreadable or malformed file; images that are not
            NHWC, hold NaN/inf, or do not match the labels; labels out of range.

    >>> ds = load_dataset("mnist_5k")
    >>> ds.x_train.shape, ds.x_test.shape, ds.num_classes
    ((4000, 28, 28, 1), (1000, 28, 28, 1), 10)
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(
            f"Dataset name must be a non-empty string. Received: name={name!r}. {_HOW_TO_NAME}"
        )
    name = name.strip()
    if name == "mnist_5k":
        return _load_mnist_5k()
    if name.startswith("npz:"):
        return _load_npz_dataset(name, name[len("npz:") :])
    return _load_tfds(name, data_dir=data_dir, download=download)


# ----------------------------------------------------------------------------- loaders


def _load_mnist_5k() -> RawDataset:
    arrays = _read_npz(_MNIST_5K_PATH)
    x = arrays["images"]
    y = arrays["labels"].astype(np.int64)
    test_mask = np.zeros(y.shape[0], dtype=bool)
    for c in np.unique(y):
        (idx,) = np.nonzero(y == c)
        test_mask[idx[_MNIST_5K_TRAIN_PER_CLASS:]] = True
    return RawDataset(
        name="mnist_5k",
        x_train=x[~test_mask],
        y_train=y[~test_mask],
        x_test=x[test_mask],
        y_test=y[test_mask],
        num_classes=10,
    )


def _load_npz_dataset(name: str, path: str) -> RawDataset:
    if not path:
        raise ValueError(f"'npz:' must be followed by a file path. Received: name={name!r}.")
    arrays = _read_npz(path)
    keys = sorted(arrays)
    if all(k in arrays for k in _KERAS_KEYS):
        x_train = _as_nhwc(arrays["x_train"], f"{path!r} x_train")
        x_test = _as_nhwc(arrays["x_test"], f"{path!r} x_test")
        y_train, width_train = _labels_to_int(arrays["y_train"], f"{path!r} y_train")
        y_test, width_test = _labels_to_int(arrays["y_test"], f"{path!r} y_test")
        if width_train and width_test and width_train != width_test:
            raise ValueError(
                f"One-hot labels in {path!r} have different widths: y_train has {width_train} "
                f"columns but y_test has {width_test}."
            )
        width = width_train or width_test
    elif all(k in arrays for k in _FLAT_KEYS):
        images = _as_nhwc(arrays["images"], f"{path!r} images")
        labels, width = _labels_to_int(arrays["labels"], f"{path!r} labels")
        _check_same_length(images, labels, f"{path!r} images", "labels")
        _check_labels(labels, None, f"{path!r} labels")
        test_mask = _stratified_test_mask(labels, path)
        x_train, y_train = images[~test_mask], labels[~test_mask]
        x_test, y_test = images[test_mask], labels[test_mask]
    else:
        raise ValueError(
            f"npz file {path!r} must hold either the keys {list(_KERAS_KEYS)} or the keys "
            f"{list(_FLAT_KEYS)}. Received keys: {keys}."
        )
    _check_same_length(x_train, y_train, f"{path!r} train images", "labels")
    _check_same_length(x_test, y_test, f"{path!r} test images", "labels")
    if "num_classes" in arrays:
        num_classes = int(np.asarray(arrays["num_classes"]).reshape(()))
    elif width:
        num_classes = width
    else:
        _check_labels(y_train, None, f"{path!r} train labels")
        _check_labels(y_test, None, f"{path!r} test labels")
        num_classes = int(max(y_train.max(initial=-1), y_test.max(initial=-1))) + 1
    return RawDataset(name, x_train, y_train, x_test, y_test, num_classes)


def _load_tfds(name: str, data_dir: str | None, download: bool) -> RawDataset:
    import tensorflow_datasets as tfds  # Imported lazily: only TFDS names need it.

    builder_name = name.split(":")[0].split("/")[0]
    # `with_community_datasets=False` keeps this local; the default contacts GCS.
    if builder_name not in tfds.list_builders(with_community_datasets=False):
        raise ValueError(f"Unknown dataset name. Received: name={name!r}. {_HOW_TO_NAME}")
    builder = tfds.builder(name, data_dir=data_dir)
    features = builder.info.features
    is_classification = "label" in features and isinstance(
        features["label"], tfds.features.ClassLabel
    )
    if not is_classification:
        raise ValueError(
            f"TFDS dataset {name!r} is not an image classification dataset with a ClassLabel "
            f"'label' feature. Received features: {list(builder.info.features)}. {_HOW_TO_NAME}"
        )
    available = list(builder.info.splits)
    if available and not {"train", "test"} <= set(available):
        raise ValueError(
            f"TFDS dataset {name!r} needs 'train' and 'test' splits. Received splits: {available}. "
            "Export it to an npz with images/labels and load it as 'npz:PATH' instead."
        )
    splits = {}
    for split in ("train", "test"):
        try:
            ds = tfds.load(
                name,
                split=split,
                as_supervised=True,
                data_dir=data_dir,
                shuffle_files=False,
                download=download,
            )
        except AssertionError as e:  # TFDS's "could not find data" when download=False.
            raise ValueError(
                f"TFDS dataset {name!r} is not prepared in data_dir={data_dir!r} and "
                f"download={download}. Prepare it (tfds build {builder_name}) or pass "
                f"download=True. TFDS said: {e}"
            ) from e
        # Batched iteration instead of batch_size=-1: TFDS resolves -1 from the stored split
        # size, which mocked or partially-prepared datasets lack.
        xs, ys = [], []
        for xb, yb in tfds.as_numpy(ds.batch(_TFDS_NUMPY_BATCH)):
            xs.append(xb)
            ys.append(yb)
        if not xs:
            raise ValueError(f"TFDS dataset {name!r} split {split!r} is empty.")
        x = _as_nhwc(np.concatenate(xs), f"TFDS {name!r} {split} images")
        y = np.concatenate(ys).astype(np.int64)
        splits[split] = (x, y)
    return RawDataset(
        name, *splits["train"], *splits["test"], num_classes=int(features["label"].num_classes)
    )


# ----------------------------------------------------------------------------- helpers


def _read_npz(path: str) -> dict[str, np.ndarray]:
    """Reads every array of an npz file (local or gs://) into memory."""
    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            payload = f.read()
    except (tf.errors.OpError, OSError) as e:
        raise ValueError(f"Could not read npz file {path!r}: {e}") from e
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as archive:
            if not hasattr(archive, "files"):
                raise ValueError("this is a single .npy array, not an .npz archive")
            return {k: archive[k] for k in archive.files}
    except Exception as e:  # Any failure to decode means the file is not a valid npz.
        raise ValueError(
            f"File {path!r} is not a readable .npz archive ({type(e).__name__}: {e})."
        ) from e


def _as_nhwc(x: np.ndarray, where: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., np.newaxis]
    _check_images(x, where)
    return x


def _check_images(x: np.ndarray, where: str) -> None:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{where} must be a numpy array. Received: type={type(x).__name__}.")
    if x.ndim != 4 or not 1 <= x.shape[-1] <= 4:
        raise ValueError(
            f"{where} must be NHWC images of shape (N, H, W, C) with 1 <= C <= 4 "
            f"(or (N, H, W) for one channel). Received: shape={x.shape}."
        )
    if x.shape[0] == 0:
        raise ValueError(f"{where} is empty. Received: shape={x.shape}.")
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise ValueError(f"{where} must hold integer or float pixels. Received: dtype={x.dtype}.")
    if np.issubdtype(x.dtype, np.floating):
        bad = ~np.isfinite(x)
        if bad.any():
            first = int(np.argmax(bad.reshape(x.shape[0], -1).any(axis=1)))
            raise ValueError(
                f"{where} hold {int(bad.sum())} NaN or infinite pixel values (first in image "
                f"{first}). Pixels must be finite."
            )


def _labels_to_int(labels: np.ndarray, where: str) -> tuple[np.ndarray, int]:
    """Returns ``(int64 labels (N,), one-hot width or 0)``."""
    labels = np.asarray(labels)
    width = 0
    if labels.ndim == 2:
        width = int(labels.shape[1])
        if width < 2:
            raise ValueError(
                f"{where}: one-hot labels need at least 2 columns. Received: shape={labels.shape}."
            )
        labels = np.argmax(labels, axis=1)
    elif labels.ndim != 1:
        raise ValueError(
            f"{where} must be class ids of shape (N,) or one-hot of shape (N, K). "
            f"Received: shape={labels.shape}."
        )
    if np.issubdtype(labels.dtype, np.floating):
        if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
            raise ValueError(
                f"{where} must be whole numbers. Received non-integer values: {labels[:5]}..."
            )
    elif not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{where} must be integers. Received: dtype={labels.dtype}.")
    return labels.astype(np.int64), width


def _check_labels(y: np.ndarray, num_classes: int | None, where: str) -> None:
    if not isinstance(y, np.ndarray) or y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"{where} must be an integer numpy array of shape (N,). Received: "
            f"shape={getattr(y, 'shape', None)}, dtype={getattr(y, 'dtype', type(y).__name__)}."
        )
    upper = np.inf if num_classes is None else num_classes
    bad = (y < 0) | (y >= upper)
    if bad.any():
        bad_values = np.unique(y[bad])[:10].tolist()
        raise ValueError(
            f"{where} must lie in [0, {num_classes if num_classes is not None else 'num_classes'})."
            f" Received out-of-range labels: {bad_values}."
        )


def _check_same_length(x: np.ndarray, y: np.ndarray, where: str, what: str) -> None:
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"{where} and {what} must have the same length. Received: {x.shape[0]} images "
            f"and {y.shape[0]} {what}."
        )


def _stratified_test_mask(labels: np.ndarray, path: str) -> np.ndarray:
    """Per class, marks the last 20% (at least 1) of that class's images as test."""
    mask = np.zeros(labels.shape[0], dtype=bool)
    for c in np.unique(labels):
        (idx,) = np.nonzero(labels == c)
        if idx.size < 2:
            raise ValueError(
                f"npz file {path!r}: class {int(c)} has {idx.size} image, too few to split into "
                "train and test (need at least 2 per class), or provide "
                "x_train/y_train/x_test/y_test."
            )
        n_test = max(1, int(idx.size * _TEST_FRACTION))
        mask[idx[-n_test:]] = True
    return mask
