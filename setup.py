"""Packaging for tfkip: dataset distillation by Kernel Inducing Points in TensorFlow."""

from setuptools import find_packages, setup

setup(
    name="tfkip",
    version="0.1.0",
    description=(
        "Kernel Inducing Points (KIP) and Label Solve dataset distillation with "
        "analytic NNGP/NTK kernels in TensorFlow/Keras"
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["tfkip", "tfkip.*"]),
    package_data={"tfkip.data": ["assets/*.npz"]},
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3",
        "tensorflow-datasets>=4.9",
        # tensorflow-datasets needs it to build datasets but does not declare it.
        "importlib_resources",
        "numpy",
        "absl-py",
        # tf.summary needs it and TensorFlow 2.21 no longer installs it: the run's
        # TensorBoard summaries (and keras.callbacks.TensorBoard) depend on it.
        "tensorboard",
    ],
    extras_require={
        # pytest-xdist: the suite runs on two workers (docs/development.md).
        "test": ["pytest>=7", "pytest-xdist>=3", "ruff>=0.5"],
    },
)
