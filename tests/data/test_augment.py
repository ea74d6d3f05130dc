"""Tests for tfkip.data.augment: spec grammar and the augmentation layers."""

import numpy as np
import pytest
import tensorflow as tf

from tfkip.data import SupportAugmenter, make_augmentation, parse_augmentation_spec


def _images(n=16, h=6, w=6, c=2, dtype=np.float32):
    rng = np.random.default_rng(0)
    return tf.constant(rng.normal(size=(n, h, w, c)).astype(dtype) + 3.0)  # no zeros inside


def test_parse_grammar():
    assert parse_augmentation_spec("") == []
    assert parse_augmentation_spec("none") == []
    assert parse_augmentation_spec(" flip , translate:0.2,crop:3,rotate") == [
        ("flip", None),
        ("translate", 0.2),
        ("crop", 3),
        ("rotate", 0.05),
    ]
    assert parse_augmentation_spec("crop,translate") == [("crop", 4), ("translate", 0.125)]


def test_unknown_and_malformed_ops():
    with pytest.raises(
        ValueError, match=r"Unknown augmentation\(s\) \['blur', 'cutout'\].*'crop', 'flip'"
    ):
        parse_augmentation_spec("flip,blur,cutout:3")
    for spec in ("crop:0", "crop:x", "crop:1.5", "flip:1", "translate:2", "rotate:-0.1"):
        with pytest.raises(ValueError, match=spec.replace(".", r"\.")):
            parse_augmentation_spec(spec)
    with pytest.raises(ValueError, match="Unknown"):
        SupportAugmenter("zoom")


def test_identity_spec():
    x = _images()
    aug = make_augmentation("none", seed=0)
    np.testing.assert_array_equal(aug(x).numpy(), x.numpy())
    assert aug.xla_compatible


def test_flip_in_tf_function_mirrors_some_images():
    x = _images()
    aug = make_augmentation("flip", seed=1)
    out = tf.function(lambda t: aug(t, training=True))(x).numpy()
    x = x.numpy()
    flipped = [np.array_equal(o, xi[:, ::-1]) for o, xi in zip(out, x)]
    kept = [np.array_equal(o, xi) for o, xi in zip(out, x)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert any(flipped) and any(kept)


def _shift(img, dy, dx):
    h, w, _ = img.shape
    out = np.zeros_like(img)
    src = img[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)]
    out[max(-dy, 0) : max(-dy, 0) + src.shape[0], max(-dx, 0) : max(-dx, 0) + src.shape[1]] = src
    return out


def test_crop_under_xla_is_a_per_image_zero_filled_shift():
    x = _images(dtype=np.float64)
    aug = make_augmentation("crop:2", seed=3, dtype="float64")
    assert aug.xla_compatible
    out = tf.function(lambda t: aug(t, training=True), jit_compile=True)(x)
    assert out.dtype == tf.float64 and out.shape == x.shape
    shifts = []
    for o, xi in zip(out.numpy(), x.numpy()):
        match = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if np.array_equal(o, _shift(xi, dy, dx))
        ]
        assert len(match) == 1
        shifts.append(match[0])
    assert len(set(shifts)) > 3  # offsets are drawn per image, not per batch


def test_flip_and_crop_compile_with_xla_and_draw_fresh_transforms():
    x = _images()
    aug = make_augmentation("flip,crop:1", seed=0)
    fn = tf.function(lambda t: aug(t, training=True), jit_compile=True)
    a, b = fn(x).numpy(), fn(x).numpy()
    assert a.shape == x.shape
    assert not np.array_equal(a, b)


def test_translate_and_rotate_run_in_tf_function_but_not_xla():
    x = _images(n=4)
    aug = make_augmentation("translate:0.25,rotate:0.1", seed=0)
    assert not aug.xla_compatible
    out = tf.function(lambda t: aug(t, training=True))(x)
    assert out.shape == x.shape and out.dtype == tf.float32
    assert not np.array_equal(out.numpy(), x.numpy())
    # As documented: ImageProjectiveTransformV3 has no XLA kernel.
    with pytest.raises(tf.errors.InvalidArgumentError, match="ImageProjectiveTransformV3"):
        tf.function(lambda t: aug(t, training=True), jit_compile=True)(x)


def test_training_false_is_identity_and_dtype_mismatch_is_an_error():
    x = _images()
    aug = make_augmentation("flip,crop:2", seed=0)
    np.testing.assert_array_equal(aug(x, training=False).numpy(), x.numpy())
    with pytest.raises(ValueError, match="images.dtype=float64.*dtype='float64'"):
        aug(tf.cast(x, tf.float64))


def test_config_round_trip():
    aug = make_augmentation("flip,crop:3", seed=9, dtype="float64")
    clone = SupportAugmenter.from_config(aug.get_config())
    assert clone.ops == aug.ops and clone.seed == 9 and clone.compute_dtype == "float64"
