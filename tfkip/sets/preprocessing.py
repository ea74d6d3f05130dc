"""Raw test images -> the preprocessed space the distilled images live in (spec §1.4, §4).

The map is the run's own `tfkip.data.Preprocessor`, rebuilt from a set's metadata (its
sidecar and, for ZCA sets, the ZCA matrix file), so an export maps raw images exactly as
the distillation did.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tfkip import files as _files
from tfkip.data.preprocess import Preprocessor
from tfkip.sets.metadata import DistilledMetadata, normalize_preprocessing


def read_preprocessing(path: str) -> tuple[dict[str, Any], np.ndarray | None]:
    """Reads a run's ``preprocessing.npz``.

    The file holds arrays ``mean`` (C,), ``std`` (C,), ``pixel_scale`` (), ``zca_reg`` (),
    ``image_shape`` (3,) and, when ZCA is on, ``zca_matrix`` (d, d) with d = H*W*C.

    Returns:
        ``(preprocessing_dict, zca_matrix_or_None)``; the dict's ``zca`` flag is whether
        the file holds a ZCA matrix (or its own ``zca`` array if present).
    """
    arrays = _files.load_npz(path)
    missing = [k for k in ("mean", "std", "pixel_scale", "image_shape") if k not in arrays]
    if missing:
        raise ValueError(
            f"{path!r} is not a preprocessing file: it lacks arrays {missing}. "
            f"Received: keys={sorted(arrays)}"
        )
    zca_matrix = arrays.get("zca_matrix")
    zca = bool(arrays["zca"]) if "zca" in arrays else zca_matrix is not None
    prep = {
        "pixel_scale": arrays["pixel_scale"],
        "mean": arrays["mean"],
        "std": arrays["std"],
        "zca": zca,
        "zca_reg": arrays.get("zca_reg", np.float64(0.0)),
        "image_shape": [int(s) for s in arrays["image_shape"]],
    }
    return normalize_preprocessing(prep), zca_matrix


def load_zca_matrix(path: str) -> np.ndarray:
    """Loads a (d, d) ZCA matrix from a ``.npy`` file or an ``.npz`` with ``zca_matrix``."""
    arrays = _files.load_npz(path)
    if "zca_matrix" in arrays:
        matrix = arrays["zca_matrix"]
    elif list(arrays) == ["array"]:
        matrix = arrays["array"]
    else:
        raise ValueError(f"{path!r} holds no `zca_matrix` array. Received: keys={sorted(arrays)}")
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"A ZCA matrix must be square. Received: shape={matrix.shape}")
    return matrix


def preprocess(
    x_raw: np.ndarray,
    preprocessing: dict[str, Any],
    zca_matrix: np.ndarray | None = None,
    dtype: Any = np.float32,
) -> np.ndarray:
    """Maps raw images into the distilled images' space.

    With s = ``pixel_scale``, mu/sigma the per-channel ``mean``/``std``:
    ``x <- (x / s - mu) / sigma``; then, if ``zca``, each image is flattened to a
    d-vector v, layer-normed ``v <- (v - mean(v)) / ||v - mean(v)||_2`` (an all-constant
    image stays 0) and whitened ``v <- v @ W`` with the (d, d) ``zca_matrix`` W.
    Computed in float64 by `tfkip.data.Preprocessor` and cast to ``dtype``.

    Args:
        x_raw: (N, H, W, C) or (H, W, C) raw images, uint8 in 0..255 or float.
        preprocessing: dict as in :func:`tfkip.sets.metadata.normalize_preprocessing`.
        zca_matrix: (d, d) matrix, required when ``preprocessing["zca"]``.
        dtype: output dtype.

    Returns:
        Array of ``x_raw``'s shape and ``dtype``.
    """
    prep = normalize_preprocessing(preprocessing)
    shape = tuple(prep["image_shape"])
    x = np.asarray(x_raw)
    single = x.ndim == 3
    if single:
        x = x[None]
    if x.ndim != 4 or tuple(x.shape[1:]) != shape:
        raise ValueError(
            f"Raw images must have shape (N, {', '.join(map(str, shape))}) or {shape}. "
            f"Received: x_raw.shape={np.shape(x_raw)}"
        )
    if prep["zca"] and zca_matrix is None:
        raise ValueError(
            "This distilled set was ZCA-whitened but no ZCA matrix is available: pass "
            "`zca_matrix=` or keep the exported `*.zca.npy` file next to the sidecar "
            "(metadata `zca_matrix_file`). Received: zca_matrix=None"
        )
    replay = Preprocessor(
        mean=prep["mean"],
        std=prep["std"],
        pixel_scale=prep["pixel_scale"],
        image_shape=shape,
        zca_matrix=zca_matrix if prep["zca"] else None,
        # zca_reg matters only for fitting; sets without ZCA may record 0.
        zca_reg=prep["zca_reg"] if prep["zca_reg"] > 0 else 0.1,
    )
    out = replay(x, dtype=dtype)
    return out[0] if single else out


def preprocessor(
    metadata: DistilledMetadata, zca_matrix: np.ndarray | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """The function mapping RAW test images into ``metadata``'s distilled space.

    Args:
        metadata: metadata with a ``preprocessing`` dict. For ZCA sets the matrix is
            read from ``metadata.zca_matrix_file`` unless ``zca_matrix`` is given.
        zca_matrix: optional (d, d) ZCA matrix overriding the file.

    Returns:
        ``fn(x_raw)``: (N, H, W, C) or (H, W, C) uint8/float -> same shape in
        ``metadata.dtype``. See :func:`preprocess` for the math.

    Raises:
        ValueError: if the metadata has no preprocessing, or ZCA is on and no matrix
            can be found.

    >>> fn = preprocessor(metadata)  # doctest: +SKIP
    >>> x_test = fn(raw_uint8_test_images)  # doctest: +SKIP
    """
    if metadata.preprocessing is None:
        raise ValueError(
            "The metadata has no `preprocessing` dict, so raw images cannot be mapped into "
            "the distilled space; export from the run's workdir (which has "
            "preprocessing.npz) or set it with `metadata.replace(preprocessing=...)`. "
            "Received: metadata.preprocessing=None"
        )
    prep = metadata.preprocessing
    if prep["zca"] and zca_matrix is None:
        if not metadata.zca_matrix_file:
            raise ValueError(
                "This distilled set was ZCA-whitened but its metadata names no ZCA matrix "
                "file; pass `zca_matrix=` explicitly. Received: zca_matrix_file=None"
            )
        zca_matrix = load_zca_matrix(metadata.zca_matrix_file)
    dtype = np.dtype(metadata.dtype)

    def fn(x_raw: np.ndarray) -> np.ndarray:
        return preprocess(x_raw, prep, zca_matrix, dtype)

    return fn
