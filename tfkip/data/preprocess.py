"""Reference preprocessing: pixel scaling, per-channel standardisation, optional ZCA.

Follows the KIP reference code (spec §1.4 and §2 "Data"):

1. ``x <- x / 255`` for uint8 pixels (``pixel_scale = 255``), else ``x`` as stored.
2. ``x <- (x - mean_c) / std_c`` with the train set's per-channel mean and (population)
   std over axes ``(0, 1, 2)``.
3. Optional ZCA (``kip/nn_training.ipynb``, ``zca_normalize``): flatten each image to
   ``d = H*W*C`` features; per-image layer norm ``v <- (v - mean(v)) / ||v - mean(v)||_2``;
   ``Σ = XᵀX / n`` in float64 on the layer-normed train rows; ``reg = zca_reg * tr(Σ)/d``;
   eigendecomposition ``Σ + reg*I = U diag(s) Uᵀ`` (s descending; the same as the SVD
   of this symmetric positive-definite matrix); ``m = s^(-1/2)`` with ``m[n:] = 1`` when
   ``n < d`` (rank control); ``W = U diag(m) Uᵀ``; images map to ``layer_norm(v) @ W``.
   Hence ``W (Σ + reg*I) W = I`` when ``n >= d``.
"""

from __future__ import annotations

import io

import numpy as np
import tensorflow as tf

from tfkip import files

__all__ = ["Preprocessor", "centered_one_hot", "layer_norm_rows", "zca_whitening_matrix"]

_CHUNK = 4096
_FORMAT_VERSION = 1


def centered_one_hot(labels: np.ndarray, num_classes: int, dtype=np.float64) -> np.ndarray:
    """Centred one-hot labels of KIP: ``1 - 1/K`` on the class, ``-1/K`` elsewhere.

    Args:
        labels: int class ids in ``[0, K)``, shape ``(N,)``.
        num_classes: ``K >= 2``.
        dtype: float dtype of the result.

    Returns:
        Array of shape ``(N, K)``; each row sums to 0 (0.9 / -0.1 for K = 10).

    >>> centered_one_hot(np.array([1]), 4)
    array([[-0.25,  0.75, -0.25, -0.25]])
    """
    if int(num_classes) != num_classes or num_classes < 2:
        raise ValueError(
            f"num_classes must be an integer >= 2. Received: num_classes={num_classes}."
        )
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"labels must be integer class ids of shape (N,). Received: shape={labels.shape}, "
            f"dtype={labels.dtype}."
        )
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        raise ValueError(
            f"labels must lie in [0, {num_classes}). Received out-of-range labels: "
            f"{np.unique(labels[bad])[:10].tolist()}."
        )
    out = np.full((labels.shape[0], int(num_classes)), -1.0 / num_classes, dtype=dtype)
    out[np.arange(labels.shape[0]), labels] += 1.0
    return out


def layer_norm_rows(x: np.ndarray) -> np.ndarray:
    """Per-row layer norm of the reference ZCA: ``(v - mean(v)) / ||v - mean(v)||_2``.

    Args:
        x: float array ``(n, d)``.

    Returns:
        float64 ``(n, d)``; rows that are constant (zero norm after centring) stay zero
        (the reference would produce NaN there).
    """
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def zca_whitening_matrix(x_flat: np.ndarray, zca_reg: float) -> np.ndarray:
    """The reference ZCA whitening matrix for already layer-normed rows.

    Args:
        x_flat: ``(n, d)`` rows (layer-normed train images).
        zca_reg: relative regulariser; the absolute one is ``zca_reg * tr(Σ) / d``.

    Returns:
        ``W`` float64 ``(d, d)``, symmetric; apply as ``x_flat @ W``. With
        ``Σ = XᵀX / n``, ``Σ + reg I = U diag(s) Uᵀ`` (s descending) and
        ``m = s^(-1/2)`` (``m[n:] = 1`` if ``n < d``), ``W = U diag(m) Uᵀ``.
    """
    x = np.asarray(x_flat, dtype=np.float64)
    return _whitening_from_covariance(x.T @ x / x.shape[0], x.shape[0], zca_reg)


def _whitening_from_covariance(cov: np.ndarray, n: int, zca_reg: float) -> np.ndarray:
    """``W`` from ``Σ = XᵀX / n`` (d, d); see :func:`zca_whitening_matrix`."""
    d = cov.shape[0]
    reg = zca_reg * np.trace(cov) / d
    s, u = np.linalg.eigh(cov + reg * np.eye(d))
    s, u = s[::-1], u[:, ::-1]  # Descending, as returned by an SVD.
    inv_sqrt = s ** (-0.5)
    if n < d:
        inv_sqrt[n:] = 1.0
    return (u * inv_sqrt) @ u.T


class Preprocessor:
    """Maps raw images into the preprocessed space where KIP learns.

    ``x_raw (N, H, W, C) -> ((x_raw / pixel_scale - mean) / std)``, then, if ZCA is on,
    ``layer_norm(flatten(.)) @ W`` reshaped back to ``(N, H, W, C)`` (see module docstring).

    Build one with :meth:`fit` on the raw train images, or :meth:`load` a saved one.

    >>> pre = Preprocessor.fit(np.arange(24, dtype=np.uint8).reshape(2, 2, 2, 3))
    >>> pre(np.zeros((1, 2, 2, 3), np.uint8)).shape
    (1, 2, 2, 3)
    """

    def __init__(
        self,
        mean: np.ndarray,
        std: np.ndarray,
        pixel_scale: float,
        image_shape: tuple[int, int, int],
        zca_matrix: np.ndarray | None = None,
        zca_reg: float = 0.1,
    ) -> None:
        image_shape = tuple(int(s) for s in image_shape)
        if len(image_shape) != 3 or min(image_shape) < 1:
            raise ValueError(f"image_shape must be (H, W, C). Received: image_shape={image_shape}.")
        channels = image_shape[-1]
        mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        std = np.asarray(std, dtype=np.float64).reshape(-1)
        if mean.shape != (channels,) or std.shape != (channels,):
            raise ValueError(
                f"mean and std must have one entry per channel ({channels}). Received: "
                f"mean.shape={mean.shape}, std.shape={std.shape}."
            )
        if not np.all(np.isfinite(std)) or np.any(std <= 0):
            raise ValueError(
                f"std must be positive and finite in every channel. Received: std={std.tolist()} "
                "(a constant channel in the train images cannot be standardised)."
            )
        if not pixel_scale > 0:
            raise ValueError(f"pixel_scale must be positive. Received: pixel_scale={pixel_scale}.")
        if not zca_reg > 0:
            raise ValueError(f"zca_reg must be positive. Received: zca_reg={zca_reg}.")
        d = int(np.prod(image_shape))
        if zca_matrix is not None:
            zca_matrix = np.asarray(zca_matrix, dtype=np.float64)
            if zca_matrix.shape != (d, d):
                raise ValueError(
                    f"zca_matrix must have shape (d, d) with d = H*W*C = {d}. Received: "
                    f"zca_matrix.shape={zca_matrix.shape}."
                )
        self.mean = mean
        self.std = std
        self.pixel_scale = float(pixel_scale)
        self.image_shape: tuple[int, int, int] = image_shape  # type: ignore[assignment]
        self.zca_matrix = zca_matrix
        self.zca_reg = float(zca_reg)

    @property
    def zca(self) -> bool:
        """Whether ZCA whitening is applied after standardisation."""
        return self.zca_matrix is not None

    @classmethod
    def fit(
        cls,
        x_train_raw: np.ndarray,
        zca: bool = False,
        zca_reg: float = 0.1,
        zca_fit_count: int | None = None,
    ) -> Preprocessor:
        """Fits the preprocessing on raw train images.

        Args:
            x_train_raw: ``(N, H, W, C)`` uint8 (divided by 255) or float (used as is).
            zca: whether to fit and apply ZCA whitening (spec §1.4).
            zca_reg: relative ZCA regulariser (reference default 0.1).
            zca_fit_count: fit the whitening on the first this many images only (still
                standardised with the statistics of all ``N``); default all. nn_training
                holds out the last 5,000 train images for validation and fits on the
                rest (spec §4 "Data").

        Returns:
            The fitted :class:`Preprocessor`.
        """
        x = _check_raw(x_train_raw, None)
        if not zca_reg > 0:
            raise ValueError(f"zca_reg must be positive. Received: zca_reg={zca_reg}.")
        pixel_scale = 255.0 if x.dtype == np.uint8 else 1.0
        n, channels = x.shape[0], x.shape[-1]
        count = n * x.shape[1] * x.shape[2]
        total = np.zeros(channels)
        for i in range(0, n, _CHUNK):
            total += x[i : i + _CHUNK].sum(axis=(0, 1, 2), dtype=np.float64)
        mean = total / pixel_scale / count
        sq = np.zeros(channels)
        for i in range(0, n, _CHUNK):
            centred = x[i : i + _CHUNK].astype(np.float64) / pixel_scale - mean
            sq += np.square(centred).sum(axis=(0, 1, 2))
        std = np.sqrt(sq / count)
        pre = cls(mean, std, pixel_scale, x.shape[1:], None, zca_reg)
        if zca:  # Σ = XᵀX / m accumulated over chunks to bound memory.
            m = n if zca_fit_count is None else int(zca_fit_count)
            if isinstance(zca_fit_count, bool) or not 1 <= m <= n:
                raise ValueError(
                    f"zca_fit_count must be between 1 and the number of images ({n}). "
                    f"Received: zca_fit_count={zca_fit_count!r}."
                )
            d = int(np.prod(x.shape[1:]))
            gram = np.zeros((d, d))
            for i in range(0, m, _CHUNK):
                chunk = x[i : min(i + _CHUNK, m)]
                rows = layer_norm_rows(pre.standardize(chunk).reshape(-1, d))
                gram += rows.T @ rows
            pre.zca_matrix = _whitening_from_covariance(gram / m, m, zca_reg)
        return pre

    def standardize(self, x_raw: np.ndarray) -> np.ndarray:
        """``(x_raw / pixel_scale - mean) / std`` in float64, shape unchanged (no ZCA)."""
        x = _check_raw(x_raw, self.image_shape)
        return (x.astype(np.float64) / self.pixel_scale - self.mean) / self.std

    def __call__(self, x_raw: np.ndarray, dtype=np.float64) -> np.ndarray:
        """Preprocesses raw images ``(N, H, W, C)`` into an array of ``dtype``, same shape."""
        x = _check_raw(x_raw, self.image_shape)
        n = x.shape[0]
        out = np.empty(x.shape, dtype=dtype)
        for i in range(0, n, _CHUNK):
            chunk = self.standardize(x[i : i + _CHUNK])
            if self.zca_matrix is not None:
                flat = layer_norm_rows(chunk.reshape(chunk.shape[0], -1)) @ self.zca_matrix
                chunk = flat.reshape(chunk.shape)
            out[i : i + _CHUNK] = chunk
        return out

    def inverse_for_display(self, x: np.ndarray) -> np.ndarray:
        """Undoes the standardisation (not ZCA) for viewing: ``clip(x*std + mean, 0, 1)``.

        Args:
            x: preprocessed images ``(..., H, W, C)`` (numpy or tensor).

        Returns:
            float64 of the same shape in ``[0, 1]`` (for uint8 sources, the pixel / 255).
            ZCA'd images are not un-whitened; they show as whitened patterns.
        """
        x = np.asarray(x, dtype=np.float64)
        if x.ndim < 3 or x.shape[-1] != self.image_shape[-1]:
            raise ValueError(
                f"Expected images (..., H, W, {self.image_shape[-1]}). Received: shape={x.shape}."
            )
        return np.clip(x * self.std + self.mean, 0.0, 1.0)

    def get_config(self) -> dict:
        """JSON-serialisable summary (the ZCA matrix is not included)."""
        return {
            "pixel_scale": self.pixel_scale,
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std],
            "zca": self.zca,
            "zca_reg": self.zca_reg,
            "image_shape": list(self.image_shape),
        }

    def save(self, path: str) -> None:
        """Writes the full state (including the ZCA matrix) to an npz, atomically.

        Through `tfkip.files.atomic_write_bytes`: a reader never sees a partial file.
        ``path`` may be local or ``gs://``.
        """
        arrays = {
            "format_version": np.int64(_FORMAT_VERSION),
            "mean": self.mean,
            "std": self.std,
            "pixel_scale": np.float64(self.pixel_scale),
            "zca_reg": np.float64(self.zca_reg),
            "image_shape": np.asarray(self.image_shape, dtype=np.int64),
        }
        if self.zca_matrix is not None:
            arrays["zca_matrix"] = self.zca_matrix
        files.atomic_write_bytes(path, files.npz_bytes(**arrays))

    @classmethod
    def load(cls, path: str) -> Preprocessor:
        """Reads a :class:`Preprocessor` written by :meth:`save`."""
        try:
            with tf.io.gfile.GFile(path, "rb") as f:
                payload = f.read()
        except (tf.errors.OpError, OSError) as e:
            raise ValueError(f"Could not read preprocessor file {path!r}: {e}") from e
        try:
            with np.load(io.BytesIO(payload), allow_pickle=False) as archive:
                arrays = {k: archive[k] for k in archive.files}
        except Exception as e:  # Any decode failure means a corrupt file.
            raise ValueError(
                f"Preprocessor file {path!r} is not a readable npz ({type(e).__name__}: {e})."
            ) from e
        required = ("mean", "std", "pixel_scale", "zca_reg", "image_shape")
        missing = [k for k in required if k not in arrays]
        if missing:
            raise ValueError(
                f"Preprocessor file {path!r} lacks keys {missing}; expected {list(required)} "
                f"(+ optional zca_matrix). Received keys: {sorted(arrays)}."
            )
        return cls(
            mean=arrays["mean"],
            std=arrays["std"],
            pixel_scale=float(arrays["pixel_scale"]),
            image_shape=tuple(arrays["image_shape"].tolist()),
            zca_matrix=arrays.get("zca_matrix"),
            zca_reg=float(arrays["zca_reg"]),
        )

    def __repr__(self) -> str:
        return (
            f"Preprocessor(image_shape={self.image_shape}, pixel_scale={self.pixel_scale}, "
            f"zca={self.zca}, zca_reg={self.zca_reg})"
        )


def _check_raw(x: np.ndarray, image_shape: tuple[int, int, int] | None) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"Expected raw images of shape (N, H, W, C). Received: shape={x.shape}.")
    if image_shape is not None and tuple(x.shape[1:]) != tuple(image_shape):
        raise ValueError(
            f"Images must have the (H, W, C) the preprocessor was fitted on, {tuple(image_shape)}. "
            f"Received: shape={x.shape}."
        )
    if x.shape[0] == 0:
        raise ValueError(f"Expected at least one image. Received: shape={x.shape}.")
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise ValueError(f"Images must hold integer or float pixels. Received: dtype={x.dtype}.")
    return x
