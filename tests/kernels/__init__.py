"""Tests of `tfkip.kernels` and `tfkip.architectures` (a package, so that module names such as
``test_gradients`` cannot clash with test modules of other folders)."""
