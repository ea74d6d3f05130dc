"""Readable support pictures: upscaled cells, named class rows, natural start beside."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tfkip.viz import image_grid, minmax_per_image
from tfkip.viz.font import text_mask
from tfkip.viz.grid import class_names_for


def _set(n_per_class=2, classes=3, shape=(28, 28, 1), seed=0):
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(n_per_class * classes, *shape))
    labels = np.eye(classes)[np.repeat(np.arange(classes), n_per_class)] - 1 / classes
    return images, labels


@pytest.mark.parametrize("size, scale", [(28, 3), (32, 2), (16, 4), (64, 1), (100, 1)])
def test_small_images_are_upscaled_to_at_least_64_pixels(size, scale):
    images, labels = _set(1, 2, (size, size, 3))
    grid = image_grid(images, labels, padding=1, labelled=False)
    cell = size * scale
    assert cell >= 64
    assert grid.shape == (2 * (cell + 1) + 1, cell + 2, 3)
    # Nearest neighbour: every source pixel becomes a scale x scale block.
    pixels = np.round(minmax_per_image(images[1:2])[0] * 255).astype(np.uint8)
    expected = np.repeat(np.repeat(pixels, scale, axis=0), scale, axis=1)
    np.testing.assert_array_equal(grid[1 + cell + 1 : 1 + 2 * cell + 1, 1 : 1 + cell], expected)


def test_rows_are_named_and_natural_start_is_beside_the_distilled_set(tmp_path):
    natural, labels = _set()
    distilled = natural + 5.0 * np.random.default_rng(1).normal(size=natural.shape)
    names = ["zero", "one", "two"]
    path = str(tmp_path / "support.png")
    grid = image_grid(distilled, labels, path, natural=natural, class_names=names)
    plain = image_grid(distilled, labels, labelled=False)
    left = image_grid(natural, labels, labelled=False)
    cell = 28 * 3
    # Layout: title strip, then [names | natural panel | gap | distilled panel].
    title_h = grid.shape[0] - plain.shape[0]
    assert title_h > 0 and grid.shape[1] > plain.shape[1] + left.shape[1]
    body = grid[title_h:]
    np.testing.assert_array_equal(body[:, -plain.shape[1] :], plain)
    # The natural panel sits left of the distilled panel, after the names column.
    hits = [
        c
        for c in range(body.shape[1] - left.shape[1] + 1)
        if np.array_equal(body[:, c : c + left.shape[1]], left)
    ]
    assert len(hits) == 1 and 0 < hits[0] < body.shape[1] - plain.shape[1] - left.shape[1]
    # Each row of the names column holds the ink of its own name, and nothing else.
    for k, name in enumerate(names):
        ink = body[1 + k * (cell + 1) : (k + 1) * (cell + 1), : hits[0], 0] == 0
        mask = text_mask(name, 2)
        found = [
            (r, c)
            for r in range(ink.shape[0] - mask.shape[0] + 1)
            for c in range(ink.shape[1] - mask.shape[1] + 1)
            if np.array_equal(ink[r : r + mask.shape[0], c : c + mask.shape[1]], mask)
        ]
        assert found and ink.sum() == mask.sum(), name
    # Panel titles are drawn in the title strip.
    assert (grid[:title_h] == 0).any()
    png = tf.io.decode_png(tf.io.read_file(path)).numpy()
    np.testing.assert_array_equal(png, grid)


def test_class_names_for_known_datasets():
    assert class_names_for("cifar10", 10)[0] == "airplane"
    assert class_names_for("mnist_5k", 10) == [str(i) for i in range(10)]
    assert class_names_for("cifar10", 100)[:2] == ["0", "1"]  # wrong count: ids


def test_bad_picture_inputs_name_the_value():
    images, labels = _set()
    with pytest.raises(ValueError, match=r"natural.shape=\(6, 14, 14, 1\)"):
        image_grid(images, labels, natural=np.zeros((6, 14, 14, 1)))
    with pytest.raises(ValueError, match="one name per class \\(3\\). Received: 2 names"):
        image_grid(images, labels, class_names=["a", "b"])
    with pytest.raises(ValueError, match="scale=0"):
        image_grid(images, labels, scale=0)
