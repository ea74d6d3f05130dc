"""Argument validators shared by the whole package.

Each returns the value in canonical form or raises ``ValueError`` (``TypeError`` for a
value of the wrong kind where callers expect one) naming the argument, what it must be and
what was received, Keras style: ``"width must be a positive integer. Received: width=0"``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

PARAMETERIZATIONS = ("ntk", "standard")
PADDINGS = ("SAME", "VALID")


def is_int(x: Any) -> bool:
    """Whether ``x`` is a Python or NumPy integer (bools excluded)."""
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def check_std(name: str, value: float | None, allow_none: bool) -> float | None:
    if value is None:
        if allow_none:
            return None
        raise ValueError(f"{name} must be a non-negative number. Received: {name}=None")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a non-negative number. Received: {name}={value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be finite and >= 0. Received: {name}={value!r}")
    return float(value)


def check_parameterization(parameterization: str) -> str:
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(
            f"parameterization must be one of {PARAMETERIZATIONS}. "
            f"Received: parameterization={parameterization!r}"
        )
    return parameterization


def check_padding(padding: str) -> str:
    if not isinstance(padding, str) or padding.upper() not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}. Received: padding={padding!r}")
    return padding.upper()


def check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
    return value


def check_window(name: str, value: Any, ndim: int = 2) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,) * ndim
    try:
        value = tuple(value)
    except TypeError:
        raise ValueError(
            f"{name} must be a tuple of {ndim} positive integers. Received: {name}={value!r}"
        ) from None
    if len(value) != ndim or any(
        isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value
    ):
        raise ValueError(
            f"{name} must be a tuple of {ndim} positive integers. Received: {name}={value!r}"
        )
    return value


def check_seed(seed: Any) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be None or an integer >= 0. Received: seed={seed!r}")
    return seed


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be a bool. Received: {name}={value!r}")
    return bool(value)


def check_optional_float(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"`{name}` must be a number or None. Received: {name}={value!r}")
    if not math.isfinite(float(value)):
        raise ValueError(f"`{name}` must be finite. Received: {name}={value!r}")
    return float(value)


def check_shape(name: str, value: Any) -> tuple[int, int, int]:
    shape = tuple(value) if isinstance(value, (list, tuple, np.ndarray)) else None
    if shape is None or len(shape) != 3 or not all(is_int(s) and s > 0 for s in shape):
        raise ValueError(
            f"`{name}` must be three positive ints (height, width, channels). "
            f"Received: {name}={value!r}"
        )
    return tuple(int(s) for s in shape)


def check_float_dtype(name: str, value: Any) -> str:
    try:
        dtype = np.dtype(value)
    except TypeError as e:
        raise ValueError(f"`{name}` is not a numpy dtype. Received: {name}={value!r}") from e
    if not np.issubdtype(dtype, np.floating):
        raise ValueError(
            f"`{name}` must be a floating dtype such as 'float32' or 'float64'. "
            f"Received: {name}={value!r}"
        )
    return dtype.name
