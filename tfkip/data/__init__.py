"""Datasets, preprocessing, class-balanced sampling and augmentation for KIP.

>>> from tfkip import data
>>> prepared = data.prepare("mnist_5k")                      # bundled, no download
>>> support = data.class_balanced_indices(prepared.labels_train, per_class=10, seed=1)
>>> targets = data.target_dataset(prepared.x_train, prepared.labels_train, 100, seed=0)
"""

from tfkip.data.augment import (
    AUGMENTATIONS,
    RandomPadCrop,
    SupportAugmenter,
    make_augmentation,
    parse_augmentation_spec,
)
from tfkip.data.pipeline import PreparedData, prepare
from tfkip.data.preprocess import (
    Preprocessor,
    centered_one_hot,
    layer_norm_rows,
    zca_whitening_matrix,
)
from tfkip.data.sampling import (
    TargetSampler,
    class_balanced_indices,
    support_size_to_per_class,
    target_dataset,
)
from tfkip.data.sources import BUNDLED_DATASETS, RawDataset, load_dataset

__all__ = [
    "AUGMENTATIONS",
    "BUNDLED_DATASETS",
    "PreparedData",
    "Preprocessor",
    "RandomPadCrop",
    "RawDataset",
    "SupportAugmenter",
    "TargetSampler",
    "centered_one_hot",
    "class_balanced_indices",
    "layer_norm_rows",
    "load_dataset",
    "make_augmentation",
    "parse_augmentation_spec",
    "prepare",
    "support_size_to_per_class",
    "target_dataset",
    "zca_whitening_matrix",
]
