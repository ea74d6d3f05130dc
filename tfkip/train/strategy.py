"""One switch from a strategy name to a `tf.distribute.Strategy`.

=========================  =================================================================
name                       strategy
=========================  =================================================================
``default``                the default (no-op) strategy: one device, plain TF
``one_device``             `tf.distribute.OneDeviceStrategy` on the first GPU, else the CPU
``mirrored``               `tf.distribute.MirroredStrategy` over all local GPUs, else over
                           the logical CPU devices made by ``num_cpu_devices``
``multi_worker_mirrored``  `tf.distribute.MultiWorkerMirroredStrategy`; the cluster comes
                           from the ``TF_CONFIG`` environment variable
``tpu``                    `tf.distribute.TPUStrategy` via `TPUClusterResolver` (``tpu`` is
                           a TPU name or grpc address; ``'local'`` or None on a TPU VM)
=========================  =================================================================

``configure_cpu_devices(n)`` splits the host CPU into ``n`` logical devices so that
multi-replica code runs, and is tested, on any laptop; it must run before TensorFlow
initialises its devices (before the first op).

Precision policy (`set_precision_policy`): float64 on CPU/GPU (the reference's
``jax_enable_x64``); float32 on TPU (TPUs have no float64) with *full-precision* matmuls
and convolutions. By default TensorFlow lets float32 matmuls/convolutions run at reduced
precision: TensorFloat-32 on Ampere+ GPUs and, under XLA (every TPU computation and every
``jit_compile=True`` function), ``PrecisionConfig.DEFAULT``, which on a TPU is a single
bfloat16 pass (8 mantissa bits). The kernel recursions and the Cholesky solve of KIP need
all 24 bits (K_ss is ill-conditioned and its ReLU diagonal already loses ~3e-4 relative in
float32), so the policy calls ``tf.config.experimental.enable_tensor_float_32_execution(
False)``, which makes TF's XLA lowering of MatMul/BatchMatMul/Conv emit
``PrecisionConfig.HIGHEST`` (tf2xla ``GetPrecisionConfig``) and cuBLAS use full float32.
"""

from __future__ import annotations

import socket

import tensorflow as tf

STRATEGIES = ("default", "one_device", "mirrored", "multi_worker_mirrored", "tpu")


def configure_cpu_devices(num_cpu_devices: int) -> None:
    """Splits the first physical CPU into ``num_cpu_devices`` logical devices."""
    if isinstance(num_cpu_devices, bool) or not isinstance(num_cpu_devices, int):
        raise ValueError(
            "num_cpu_devices must be a positive integer. "
            f"Received: num_cpu_devices={num_cpu_devices!r}"
        )
    if num_cpu_devices < 1:
        raise ValueError(
            f"num_cpu_devices must be >= 1. Received: num_cpu_devices={num_cpu_devices}"
        )
    cpus = tf.config.list_physical_devices("CPU")
    existing = tf.config.get_logical_device_configuration(cpus[0])
    if existing is not None and len(existing) == num_cpu_devices:
        return
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * num_cpu_devices
        )
    except RuntimeError as err:
        current = len(tf.config.list_logical_devices("CPU"))
        if current == num_cpu_devices:
            return
        raise ValueError(
            f"Cannot split the CPU into num_cpu_devices={num_cpu_devices} logical devices: "
            f"TensorFlow is already initialised with {current}. Configure devices before "
            f"running any TensorFlow op."
        ) from err


def is_default_strategy(strategy: tf.distribute.Strategy) -> bool:
    """Whether ``strategy`` is TensorFlow's default (no-op) strategy: one replica on the
    current device, no cross-replica communication.

    Asked in a fresh graph, where no ``strategy.scope()`` is open, so that
    `tf.distribute.get_strategy` returns the default strategy (a singleton) even when the
    caller is inside another strategy's scope.

    >>> is_default_strategy(get_strategy("default"))
    True
    """
    with tf.Graph().as_default():
        return strategy is tf.distribute.get_strategy()


def set_precision_policy(dtype: str) -> None:
    """Applies the precision policy of the module docstring for compute ``dtype``.

    ``dtype`` is 'float64' or 'float32'; in both cases float32 matmuls/convolutions are
    made full precision (no TensorFloat-32 / bfloat16 passes), so the float32 path on
    TPU is as exact as float32 allows.

    >>> set_precision_policy("float32")
    >>> tf.config.experimental.tensor_float_32_execution_enabled()
    False
    """
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64'. Received: dtype={dtype!r}")
    tf.config.experimental.enable_tensor_float_32_execution(False)


def get_strategy(
    name: str = "default",
    tpu: str | None = None,
    num_cpu_devices: int | None = None,
) -> tf.distribute.Strategy:
    """Returns the `tf.distribute.Strategy` called ``name`` (one of `STRATEGIES`).

    Args:
      name: strategy name (see the module docstring).
      tpu: for ``'tpu'``: the TPU name or address; None or ``'local'`` on a TPU VM.
      num_cpu_devices: if set, first split the CPU into that many logical devices (for
        ``mirrored`` and tests of multi-replica code on a CPU-only machine).

    >>> get_strategy("default").num_replicas_in_sync
    1
    """
    if name not in STRATEGIES:
        raise ValueError(
            f"Unknown strategy. Expected one of {STRATEGIES}. Received: strategy={name!r}"
        )
    if num_cpu_devices is not None:
        configure_cpu_devices(num_cpu_devices)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        # ReductionToOneDevice works on any device set and, unlike the default NCCL /
        # collective ops, allows several MirroredStrategy objects per process (tests).
        return tf.distribute.MirroredStrategy(
            devices, cross_device_ops=tf.distribute.ReductionToOneDevice()
        )
    if name == "multi_worker_mirrored":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return _tpu_strategy(tpu)


def _tpu_strategy(tpu: str | None) -> tf.distribute.Strategy:
    address = "local" if tpu in (None, "", "local") else tpu
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=address)
        _check_reachable(resolver.master())
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except Exception as err:  # noqa: BLE001 (URLError, NotFoundError, ... all mean unreachable)
        raise ValueError(
            f"Cannot reach a TPU at tpu={tpu!r} ({type(err).__name__}: {err}). On a Cloud TPU "
            f"VM use --tpu=local; elsewhere pass the TPU name and make sure it is running."
        ) from err
    return tf.distribute.TPUStrategy(resolver)


def _check_reachable(master: str, timeout: float = 10.0) -> None:
    """Fails fast (instead of TensorFlow's minutes of retries) if a grpc:// TPU is down."""
    if not master.startswith("grpc://"):
        return  # a TPU VM's local TPU, or a resolver that already looked the name up
    host, _, port = master[len("grpc://") :].rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except (OSError, ValueError) as err:
        raise ConnectionError(f"nothing answers at {master}") from err


def replica_batch_size(global_batch_size: int, strategy: tf.distribute.Strategy) -> int:
    """``global_batch_size / replicas``; a ValueError unless it divides evenly."""
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        raise ValueError(
            f"The global batch size must be divisible by the number of replicas ({replicas}). "
            f"Received: batch_size={global_batch_size}"
        )
    return global_batch_size // replicas


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True unless this process is a non-chief worker of a multi-worker strategy."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type in (None, "chief") or (task_type == "worker" and task_id == 0)


def worker_dir(workdir: str) -> str:
    """A non-chief worker's scratch folder inside ``workdir`` (from its TF_CONFIG task)."""
    import json
    import os

    from tfkip import files

    task = json.loads(os.environ.get("TF_CONFIG") or "{}").get("task", {})
    return files.join(workdir, f".worker-{task.get('type', 'worker')}-{task.get('index', 0)}")
