"""Random augmentation of the support images, from a short spec string.

Grammar (comma-separated ops, applied left to right; spaces ignored)::

    spec  := "" | "none" | op ("," op)*
    op    := "flip"             # keras RandomFlip("horizontal"), per image
           | "translate[:F]"    # keras RandomTranslation(F, F), zero fill, F in (0, 1],
                                # default 0.125 (fraction of height/width), per image
           | "rotate[:F]"       # keras RandomRotation(F), zero fill, F in (0, 0.5] of a
                                # full turn, default 0.05, per image
           | "crop[:P]"         # zero-pad by P pixels then crop back to H x W at a random
                                # offset per image (an integer shift by up to +-P); P >= 1,
                                # default 4

Example: ``"flip,crop:4"``. Zero is the channel mean in standardised space, so fills add
no bias.

XLA: ``flip`` and ``crop`` compile under ``tf.function(jit_compile=True)``; ``translate``
and ``rotate`` use ``ImageProjectiveTransformV3``, which has no XLA kernel, so they run
only in a plain ``tf.function`` (:attr:`SupportAugmenter.xla_compatible` says which).
``crop`` is a tfkip layer because ``keras.layers.RandomCrop`` uses one offset for the
whole batch.
"""

from __future__ import annotations

import keras
import tensorflow as tf

__all__ = [
    "AUGMENTATIONS",
    "RandomPadCrop",
    "SupportAugmenter",
    "make_augmentation",
    "parse_augmentation_spec",
]

#: Valid op names and their default argument (None: takes no argument).
AUGMENTATIONS: dict[str, float | int | None] = {
    "flip": None,
    "translate": 0.125,
    "rotate": 0.05,
    "crop": 4,
}
_XLA_OPS = frozenset({"flip", "crop"})


def parse_augmentation_spec(spec: str) -> list[tuple[str, float | int | None]]:
    """Parses a spec string into ``[(op, argument), ...]`` (see the module grammar).

    >>> parse_augmentation_spec("flip, crop:2")
    [('flip', None), ('crop', 2)]
    """
    if not isinstance(spec, str):
        raise TypeError(f"spec must be a string. Received: spec={spec!r}.")
    text = spec.replace(" ", "").lower()
    if text in ("", "none"):
        return []
    ops: list[tuple[str, float | int | None]] = []
    unknown = []
    for token in text.split(","):
        name, _, arg = token.partition(":")
        if name not in AUGMENTATIONS:
            unknown.append(name or token)
            continue
        ops.append((name, _parse_arg(name, arg, spec)))
    if unknown:
        raise ValueError(
            f"Unknown augmentation(s) {unknown} in spec={spec!r}. Valid ops: "
            f"{sorted(AUGMENTATIONS)}, e.g. 'flip,crop:4'; '' or 'none' for no augmentation."
        )
    return ops


def _parse_arg(name: str, arg: str, spec: str) -> float | int | None:
    default = AUGMENTATIONS[name]
    if default is None:
        if arg:
            raise ValueError(f"Augmentation {name!r} takes no argument. Received: spec={spec!r}.")
        return None
    if not arg:
        return default
    try:
        value = int(arg) if name == "crop" else float(arg)
    except ValueError:
        value = None
    limits = {"crop": (1, 10**6), "translate": (1e-9, 1.0), "rotate": (1e-9, 0.5)}[name]
    if value is None or not limits[0] <= value <= limits[1]:
        kind = "an integer >= 1 (pixels)" if name == "crop" else f"a number in (0, {limits[1]}]"
        raise ValueError(
            f"Augmentation {name!r} needs {kind}. Received: {name}:{arg} in spec={spec!r}."
        )
    return value


@keras.saving.register_keras_serializable(package="tfkip")
class RandomPadCrop(keras.layers.Layer):
    """Zero-pad by ``padding`` then crop ``H x W`` at an independent offset per image.

    ``out[b, i, j] = x[b, i + dy_b - p, j + dx_b - p]`` (zero outside), with
    ``dy_b, dx_b`` uniform in ``{0, ..., 2p}``. Input and output ``(B, H, W, C)``.
    Identity when ``training`` is False.
    """

    def __init__(self, padding: int, seed: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        if int(padding) != padding or padding < 1:
            raise ValueError(f"padding must be an integer >= 1. Received: padding={padding}.")
        self.padding = int(padding)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images: tf.Tensor, training: bool = True) -> tf.Tensor:
        if not training:
            return images
        p = self.padding
        height, width = images.shape[1], images.shape[2]
        batch = tf.shape(images)[0]
        offsets = keras.random.randint(
            (batch, 2), 0, 2 * p + 1, dtype="int32", seed=self.seed_generator
        )
        padded = tf.pad(images, [[0, 0], [p, p], [p, p], [0, 0]])
        rows = offsets[:, :1] + tf.range(height)[tf.newaxis, :]
        cols = offsets[:, 1:] + tf.range(width)[tf.newaxis, :]
        out = tf.gather(padded, rows, axis=1, batch_dims=1)
        return tf.gather(out, cols, axis=2, batch_dims=1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "padding": self.padding, "seed": self.seed}


@keras.saving.register_keras_serializable(package="tfkip")
class SupportAugmenter(keras.layers.Layer):
    """Applies the augmentation ``spec`` to a batch of images ``(B, H, W, C)``.

    Args:
        spec: see the module grammar, e.g. ``"flip,crop:4"``; ``""``/``"none"``: identity.
        seed: base seed; op ``i`` uses ``seed + i``. None: nondeterministic.
        dtype: the images' dtype (e.g. ``"float64"``); inputs of another dtype raise
            ``ValueError`` instead of being silently cast.

    The random state lives in Keras ``SeedGenerator`` variables, so each call draws new
    transforms, inside ``tf.function`` too. Call with ``training=True`` (the default).

    >>> aug = SupportAugmenter("flip", seed=0)
    >>> aug(tf.zeros((2, 4, 4, 1))).shape
    TensorShape([2, 4, 4, 1])
    """

    def __init__(self, spec: str = "", seed: int | None = None, **kwargs) -> None:
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        self.spec = spec
        self.seed = seed
        self.ops = parse_augmentation_spec(spec)
        self.augmentations = [self._make(i, name, arg) for i, (name, arg) in enumerate(self.ops)]

    def _make(self, i: int, name: str, arg: float | None) -> keras.layers.Layer:
        seed = None if self.seed is None else self.seed + i
        common = {"seed": seed, "dtype": self.dtype_policy, "name": f"{name}_{i}"}
        if name == "flip":
            return keras.layers.RandomFlip("horizontal", **common)
        if name == "translate":
            return keras.layers.RandomTranslation(arg, arg, fill_mode="constant", **common)
        if name == "rotate":
            return keras.layers.RandomRotation(arg, fill_mode="constant", **common)
        return RandomPadCrop(arg, **common)

    @property
    def xla_compatible(self) -> bool:
        """Whether every op compiles under ``tf.function(jit_compile=True)``."""
        return all(name in _XLA_OPS for name, _ in self.ops)

    def call(self, images: tf.Tensor, training: bool = True) -> tf.Tensor:
        images = tf.convert_to_tensor(images)
        if images.dtype.name != self.compute_dtype:
            raise ValueError(
                f"SupportAugmenter was built for {self.compute_dtype} images. Received: "
                f"images.dtype={images.dtype.name}; construct it with dtype='{images.dtype.name}'."
            )
        if images.shape.rank != 4:
            raise ValueError(f"Expected images (B, H, W, C). Received: shape={images.shape}.")
        for layer in self.augmentations:
            images = layer(images, training=training)
        return images

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "spec": self.spec, "seed": self.seed}


def make_augmentation(
    spec: str, seed: int | None = None, dtype: str = "float32"
) -> SupportAugmenter:
    """``SupportAugmenter(spec, seed=seed, dtype=dtype)``; see the module grammar."""
    return SupportAugmenter(spec, seed=seed, dtype=dtype)
