"""The distributed KIP custom training loop (any `tf.distribute` strategy).

One host call runs ``steps_per_loop`` KIP steps inside a single `tf.function`
(a `tf.while_loop`), as TPU training needs. Per step, every replica takes its
shard of the global class-balanced target batch ``TargetSampler.indices(step)``, runs
the shared per-step computation `KIPModel.kip_gradients` compiled with XLA
(``jit_compile=True``), with its loss scaled by ``1 / replicas``, and applies the
gradients through the Keras optimizer, whose all-reduce (a sum, outside XLA) makes the
applied gradient equal the single-device gradient of the global-batch mean loss. Under
the default strategy (one replica, nothing to all-reduce) the optimizer's update runs in
the same XLA program as the gradient (``fuse_update``).

Evaluation (KRR on the test split) and Label Solve's accumulation over the target set
are distributed the same way: each replica takes a tile, computes additive statistics
(squared error, correct count; ``K_st K_ts``, ``K_st y_t``), and they are summed across
replicas.

Where the target batch is gathered (``target_pipeline``):

* ``"in_step"`` (the default except on TPU): inside the loop, on the host, right before
  the step that uses it: the sampler's indices and a `tf.gather` from the pool (a host
  constant). No input thread runs beside the step, competing with it for the cores, the
  caches and the memory bandwidth, which on a CPU makes the short steps of flat networks
  faster than with the `tf.data` pipeline (which gathers on another thread).
* ``"dataset"`` (the default on TPU): a `tf.data` pipeline
  (`distribute_datasets_from_function`, two batches prefetched) whose elements are the
  replicas' shards, fed to the accelerator while it computes.

Both give the same batches, so the same training, bit for bit.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfkip.data.sampling import TargetSampler
from tfkip.kip.krr import check_finite
from tfkip.kip.label_solve import solve_labels
from tfkip.kip.model import KIPModel
from tfkip.runtime.memory import FirstCalls
from tfkip.train.strategy import is_default_strategy, replica_batch_size


class KIPTrainer:
    """Runs KIP steps, evaluation and Label Solve of a `KIPModel` under a strategy.

    Args:
      model: a `KIPModel` created under ``strategy.scope()``, compiled with an optimizer
        (``model.compile(optimizer=...)``) or given ``optimizer``.
      strategy: the `tf.distribute.Strategy`.
      x_train, y_train, labels_train: the target pool (preprocessed images, label rows,
        int classes).
      target_batch_size: global target batch (class-balanced; divisible by replicas).
      seed: target sampling seed; batch ``t`` depends only on ``(seed, t)``.
      jit_compile: compile the per-replica step with XLA.
      target_pipeline: ``"in_step"``, ``"dataset"`` or ``"auto"`` (``"dataset"`` under
        a `tf.distribute.TPUStrategy`, else ``"in_step"``): where each step's target
        batch is gathered (see the module docstring). The batches, and so the training,
        are the same either way.
      fuse_update: run the optimizer's update in the step's XLA program (one compiled
        call per step instead of the gradient's program followed by ~20 TensorFlow ops
        per variable). None (the default): under the
        default strategy with ``jit_compile``; elsewhere the update stays outside XLA,
        where the strategy all-reduces the replicas' gradients. True needs
        ``jit_compile`` and one replica. The update is the same arithmetic either way
        (XLA may round it differently in the last bit).
      cache_target_variances: compute the targets' self-kernel variances
        (`KIPModel.target_variances`) once for the whole pool and gather them with each
        batch, instead of in every step. None (the default): when the network's
        variances are one number per image and nonlinearity (FC networks, Flatten
        first), so the cache is tiny and saves a pass over the target batch per step.
        Spatial networks keep a position map per image and
        nonlinearity, and their step is dominated by the support-target pairs.
      release_compile_memory: during the first (compiling) call of the training loop,
        of evaluation and of Label Solve, hand the memory XLA's compiler frees back to
        the operating system (`tfkip.runtime.memory`): lowers the peak RSS of the run.
        A no-op where the C library is not glibc.
    """

    def __init__(
        self,
        model: KIPModel,
        strategy: tf.distribute.Strategy,
        x_train: np.ndarray,
        y_train: np.ndarray,
        labels_train: np.ndarray,
        target_batch_size: int,
        seed: int,
        jit_compile: bool = True,
        release_compile_memory: bool = True,
        target_pipeline: str = "auto",
        fuse_update: bool | None = None,
        cache_target_variances: bool | None = None,
    ):
        self.model = model
        self.strategy = strategy
        self.replicas = strategy.num_replicas_in_sync
        self.per_replica = replica_batch_size(target_batch_size, strategy)
        self.sampler = TargetSampler(labels_train, y_train.shape[1], target_batch_size, seed)
        self.x_train = np.asarray(x_train, dtype=model.dtype)
        self.y_train = np.asarray(y_train, dtype=model.dtype)
        self.jit_compile = jit_compile
        self.target_pipeline = resolve_target_pipeline(target_pipeline, strategy)
        self._pool = None
        if fuse_update is None:
            fuse_update = jit_compile and is_default_strategy(strategy)
        elif fuse_update and not (jit_compile and self.replicas == 1):
            raise ValueError(
                "fuse_update=True needs jit_compile=True and one replica. Received: "
                f"jit_compile={jit_compile}, replicas={self.replicas}."
            )
        self.fuse_update = bool(fuse_update)
        optimizer = getattr(model, "optimizer", None)  # None: evaluation only
        if self.fuse_update and optimizer is not None and not optimizer.built:
            # The fused step must not create the optimizer's variables under XLA.
            with strategy.scope():
                optimizer.build(model.trainable_variables)
        if cache_target_variances is None:
            cache_target_variances = model.exact and model.network.flat_variances
        elif cache_target_variances and not model.exact:
            raise ValueError(
                "cache_target_variances needs an exact kernel (the random-feature kernel "
                f"has no self-kernel pass). Received: kernel={model.kernel!r}"
            )
        self.cache_target_variances = bool(cache_target_variances)
        self._replica_grads = tf.function(self._grads, jit_compile=jit_compile, autograph=False)
        self._fused_step = tf.function(self._fused, jit_compile=True, autograph=False)
        self._train_loop = tf.function(self._loop, autograph=False)
        self._iterator = None
        self._iterator_step = None
        self._sum_fns = {}
        self._first_calls = FirstCalls(enabled=release_compile_memory)

    # ------------------------------------------------------------------ data
    def _target_pool(self) -> tuple[tf.Tensor, ...]:
        """The target pool ``(x, y, *variances)`` as tensors in host memory, created once
        (both target pipelines gather from it); ``variances``, the targets'
        `KIPModel.target_variances`, only with ``cache_target_variances``."""
        if self._pool is None:
            # Eager tensors (captured by every traced function), in host memory, whatever
            # the replicas' devices.
            with tf.init_scope(), tf.device("CPU:0"):
                x = tf.constant(self.x_train)
                variances = self._pool_variances(x) if self.cache_target_variances else []
                self._pool = (x, tf.constant(self.y_train), *variances)
        return self._pool

    def _pool_variances(self, x: tf.Tensor, rows: int = 4096) -> list[tf.Tensor]:
        """`KIPModel.target_variances` of the whole pool ``x``, ``rows`` at a time."""
        parts = [self.model.target_variances(x[i : i + rows]) for i in range(0, x.shape[0], rows)]
        return [tf.concat(values, 0) for values in zip(*parts)]

    def _dataset_fn(self, start_step: int):
        pool = self._target_pool()
        sampler, per_replica = self.sampler, self.per_replica

        def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
            local = context.num_replicas_in_sync // context.num_input_pipelines
            first = context.input_pipeline_id * local

            def shard(step, r):
                return gather_shard(pool, sampler.indices(step), first + r, per_replica)

            # Element k is replica k % local's shard of step k // local: one flat `map`
            # (a `flat_map` over replicas costs ~10% of an FC1 step on CPU).
            elements = tf.data.Dataset.range(start_step * local, 2**62)
            ds = elements.map(lambda k: shard(k // local, tf.cast(k % local, tf.int32)))
            options = tf.data.Options()
            options.experimental_distribute.auto_shard_policy = (
                tf.data.experimental.AutoShardPolicy.OFF
            )
            return ds.with_options(options).prefetch(2)

        return dataset_fn

    def _iterator_at(self, step: int):
        if self._iterator is None or self._iterator_step != step:
            dataset = self.strategy.distribute_datasets_from_function(self._dataset_fn(step))
            self._iterator = iter(dataset)
        return self._iterator

    # ------------------------------------------------------------------ train
    def _grads(self, step, x, y, *variances):
        """``(loss, accuracy, gradients)`` of this replica's batch (and, with
        ``cache_target_variances``, its gathered target variances), the loss scaled by
        ``1 / replicas`` (the summed replica gradients are the global-batch gradient).
        ``step`` keys the random twins of a random-feature kernel (the same on every
        replica and in a resumed run)."""
        return self.model.kip_gradients(
            x,
            y,
            loss_scale=1.0 / self.replicas,
            target_variances=list(variances) or None,
            step=step,
        )

    def _apply(self, grads) -> None:
        self.model.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))

    def _fused(self, step, *batch):
        """`_grads` and the optimizer's update in one program (``fuse_update``)."""
        loss, accuracy, grads = self._grads(step, *batch)
        self._apply(grads)
        return loss, accuracy

    def _replica_step(self, step, *batch):
        """KIP step ``step`` on this replica's ``batch``, ``(x, y, *variances)``."""
        if self.fuse_update:
            return self._fused_step(step, *batch)
        loss, accuracy, grads = self._replica_grads(step, *batch)
        self._apply(grads)
        return loss, accuracy

    def _sampled_replica_step(self, step, indices):
        """`_replica_step` on this replica's shard of the global batch ``pool[indices]``."""
        pool = self._target_pool()
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        with tf.device(pool[0].device):  # gather on the host, copy only the batch
            batch = gather_shard(pool, indices, tf.cast(replica, tf.int32), self.per_replica)
        return self._replica_step(step, *batch)

    def _loop(self, iterator, start_step, num_steps):
        """Steps ``start_step .. start_step + num_steps - 1``; their mean (loss, accuracy).

        An explicit `tf.while_loop`, traced without AutoGraph (``autograph=False``): the
        step code has no data-dependent Python control flow, and AutoGraph's conversion
        of it (the kernel recursions, the Keras optimizer) took longer than the trace.
        """
        strategy = self.strategy

        def mean(value):
            return strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)

        def body(step, total_loss, total_acc):
            if self.target_pipeline == "in_step":
                indices = self.sampler.indices(step)
                loss, acc = strategy.run(self._sampled_replica_step, args=(step, indices))
            else:
                loss, acc = strategy.run(self._replica_step, args=(step, *next(iterator)))
            return step + 1, total_loss + mean(loss), total_acc + mean(acc)

        zero = tf.constant(0.0, self.model.dtype)
        end = start_step + num_steps
        _, total_loss, total_acc = tf.while_loop(
            lambda step, *_: step < end, body, (start_step, zero, zero)
        )
        n = tf.cast(num_steps, self.model.dtype)
        return total_loss / n, total_acc / n

    def train(self, start_step: int, num_steps: int) -> tuple[float, float]:
        """Runs steps ``start_step .. start_step + num_steps - 1`` in one host call.

        Returns the mean train (loss, accuracy) over those steps.

        Raises:
          NotPositiveDefiniteError: if the loss is not finite (the support kernel could
            not be factorised even with the jitter retry); the support set is then
            invalid and must not be saved.
        """
        iterator = self._iterator_at(start_step) if self.target_pipeline == "dataset" else None
        with self._first_calls("train"):
            loss, acc = self._train_loop(
                iterator, tf.constant(start_step, tf.int64), tf.constant(num_steps, tf.int64)
            )
        self._iterator_step = start_step + num_steps
        check_finite(loss, "The KIP loss", start_step + num_steps)
        return float(loss), float(acc)

    # ---------------------------------------------------------- distributed maps
    def _tiles(self, arrays, tile: int):
        """Yields per-replica tiles (with a padding mask) covering ``arrays``' rows."""
        n = arrays[0].shape[0]
        step = tile * self.replicas
        for start in range(0, n, step):

            def value_fn(context, start=start):
                lo = start + context.replica_id_in_sync_group * tile
                hi = min(lo + tile, n)
                count = max(hi - lo, 0)
                out = []
                for a in arrays:
                    part = a[lo : lo + count]
                    pad = np.zeros((tile - count,) + a.shape[1:], a.dtype)
                    out.append(tf.constant(np.concatenate([part, pad])))
                mask = np.zeros(tile, self.model.dtype)
                mask[:count] = 1
                return (*out, tf.constant(mask))

            yield self.strategy.experimental_distribute_values_from_function(value_fn)

    def _sum_fn(self, name: str, fn):
        """The cached distributed sum of ``fn`` over replicas (one trace per tile shape).

        ``fn(support_images, support_labels, *tile_arrays, mask)`` runs per replica,
        compiled with XLA; the cross-replica sum stays outside XLA.
        """
        if name not in self._sum_fns:
            model, strategy = self.model, self.strategy
            compiled = tf.function(fn, jit_compile=self.jit_compile, autograph=False)

            def replica_fn(*values):
                # Variables are read outside XLA and passed in: a jit-compiled function may
                # not touch another replica's variable copy.
                support = (tf.identity(model.support_images), tf.identity(model.support_labels))
                return compiled(*support, *values)

            def run(values):
                per_replica = strategy.run(replica_fn, args=values)
                return [
                    strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
                    for v in tf.nest.flatten(per_replica)
                ]

            self._sum_fns[name] = tf.function(run, autograph=False)
        return self._sum_fns[name]

    def _sum_over(self, name: str, fn, arrays, tile: int, progress=None):
        """Sums ``fn(support_images, support_labels, *tile_arrays, mask)`` over tiles/replicas.

        ``progress(rows_done)``, if given, is called after each group of replica tiles.
        """
        run = self._sum_fn(name, fn)
        total = None
        n, step = arrays[0].shape[0], tile * self.replicas
        for i, values in enumerate(self._tiles(arrays, tile)):
            with self._first_calls(name):
                reduced = [v.numpy() for v in run(values)]
            total = reduced if total is None else [a + b for a, b in zip(total, reduced)]
            if progress is not None:
                progress(min((i + 1) * step, n))
        return total

    def evaluate(
        self, x_test: np.ndarray, y_test: np.ndarray, tile: int = 500, progress=None
    ) -> dict[str, float]:
        """KRR test accuracy and MSE (``0.5 mean (pred - y)^2``) of the current support.

        ``progress(test_images_done)`` (e.g. `tfkip.runtime.progress.Progress.update`) is called
        after each group of tiles.
        """
        x_test = np.asarray(x_test, self.model.dtype)
        y_test = np.asarray(y_test, self.model.dtype)
        tile = min(tile, -(-x_test.shape[0] // self.replicas))
        sq, correct, count = self._sum_over(
            "evaluate",
            lambda xs, ys, x, y, m: self.model.krr_statistics(x, y, m, support=(xs, ys)),
            (x_test, y_test),
            tile,
            progress,
        )
        check_finite(sq, "The KRR test prediction")
        return {
            "test_accuracy": float(correct / count),
            "test_mse": float(0.5 * sq / (count * y_test.shape[1])),
        }

    def label_solve(
        self, x_target, y_target, reg: float = 1e-6, tile: int = 1000, progress=None
    ) -> np.ndarray:
        """Label Solve for the current support images over the whole target set.

        ``progress(target_images_done)`` is called after each group of tiles.
        """
        model = self.model
        x_target = np.asarray(x_target, model.dtype)
        y_target = np.asarray(y_target, model.dtype)
        tile = min(tile, -(-x_target.shape[0] // self.replicas))

        def statistics(x_s, y_s, x, y, mask):
            del y_s
            k_cs = model._kernel_fn(x, x_s, forward_only=True) * mask[:, None]
            return tf.matmul(k_cs, k_cs, transpose_a=True), tf.matmul(k_cs, y, transpose_a=True)

        gram, rhs = self._sum_over("label_solve", statistics, (x_target, y_target), tile, progress)
        k_ss = model._kernel_fn(tf.convert_to_tensor(model.support_images), forward_only=True)
        solved = solve_labels(k_ss, tf.constant(gram), tf.constant(rhs), reg).numpy()
        check_finite(solved, "The solved labels")
        return solved


def gather_shard(pool, indices, replica, per_replica: int) -> tuple[tf.Tensor, ...]:
    """Replica ``replica``'s rows ``[replica * per_replica, (replica + 1) * per_replica)``
    of the global batch ``tuple(p[indices] for p in pool)``."""
    shard = tf.slice(indices, [replica * per_replica], [per_replica])
    return tuple(tf.gather(p, shard) for p in pool)


TARGET_PIPELINES = ("auto", "in_step", "dataset")


def resolve_target_pipeline(target_pipeline: str, strategy: tf.distribute.Strategy) -> str:
    """``"in_step"`` or ``"dataset"``: ``target_pipeline``, with ``"auto"`` resolved for
    ``strategy`` (``"dataset"`` on TPU, where the host feeds the accelerator while it
    computes; ``"in_step"`` elsewhere)."""
    if target_pipeline not in TARGET_PIPELINES:
        raise ValueError(
            f"target_pipeline must be one of {TARGET_PIPELINES}. "
            f"Received: target_pipeline={target_pipeline!r}."
        )
    if target_pipeline != "auto":
        return target_pipeline
    tpu = (tf.distribute.TPUStrategy, tf.distribute.experimental.TPUStrategy)
    return "dataset" if isinstance(strategy, tpu) else "in_step"
