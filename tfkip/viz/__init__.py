"""Pictures of distilled sets: a labelled PNG grid of the support images.

>>> from tfkip.viz import image_grid
>>> png = image_grid(images, labels, class_names=["0", "1"])  # doctest: +SKIP
"""

from tfkip.viz.grid import class_names_for, display_fn_for, image_grid, minmax_per_image

__all__ = ["class_names_for", "display_fn_for", "image_grid", "minmax_per_image"]
