"""`serial`: compose kernel layers into a network with a ``kernel_fn``.

The network decides once, at construction, which covariance layout every layer needs
(walking backwards from the flat readout: Flatten needs only per-position DIAG
covariances, pooling needs the FULL position-by-position covariance, Conv/ReLU pass the
requirement on), so a Conv+Flatten net costs O(H W) per input pair and only pooled nets
pay O((H W)^2). Walking back the same way it finds which relative offsets of positions
each layer needs (`Layer.input_band`): a pooled net read out by Flatten needs only a band
of them, and for an input shape where that band is much smaller than all pairs
(`Network.band_fraction`) its pooled layers use the BAND layout (`tfkip.kernels.band`):
for the paper-2 ConvNet at 28x28, 225 instead of 784 entries per position.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tfkip.kernels import band, tiling
from tfkip.kernels.inputs import as_float_tensor, check_input_shape, covariance
from tfkip.kernels.kernel import Kernel, Layout, Shape
from tfkip.kernels.layer import Layer
from tfkip.kernels.linear import Conv
from tfkip.kernels.pairs import gather_pairs, symmetric_pairs
from tfkip.kernels.pooling import Flatten
from tfkip.kernels.spatial import full_to_diag

GETS = ("nngp", "ntk")
_Kernels = {}


def _namedtuple(get: tuple[str, ...]):
    if get not in _Kernels:
        _Kernels[get] = collections.namedtuple("Kernels", get)
    return _Kernels[get]


# The recursions are plain TensorFlow ops under static Python control flow (shapes,
# layouts, layer lists); tiles loop with `tf.map_fn`. AutoGraph has nothing to convert in
# them, and converting them anyway, on every trace inside a user's `tf.function`, costs
# more than the trace itself.
_without_autograph = tf.autograph.experimental.do_not_convert


BAND_FRACTION = 0.5
"""`Network.band_fraction`'s default: the BAND layout (`tfkip.kernels.band`) replaces FULL when
it holds at most half as many entries (28x28 ConvNet: 0.29; 32x32: 0.22; 16x16: 0.88, FULL)."""


class Network:
    """A serial composition of kernel layers (build it with `serial`).

    Attributes:
      layers: the flat tuple of layers.
      layouts: the covariance layout at the input of each layer for image inputs,
        decided once here (`Layout.FLAT` everywhere for flat-vector inputs). FULL means
        pairs of positions: held as FULL or BAND, per input shape (`layout_plan`).
      bands: the radius ``(r_h, r_w)`` of relative offsets each layer needs at its input
        (`Layer.input_band`), None where it needs every pair of positions.
      band_fraction: FULL layers use BAND when, summed over them, it holds at most this
        fraction of FULL's entries (`BAND_FRACTION`); 0 never uses BAND, ``math.inf``
        always where the readout allows. The kernels are the same either way.
    """

    band_fraction = BAND_FRACTION

    def __init__(self, layers: Sequence[Layer]):
        flat: list[Layer] = []
        for layer in layers:
            if isinstance(layer, Network):
                flat.extend(layer.layers)
            elif isinstance(layer, Layer):
                flat.append(layer)
            else:
                raise ValueError(
                    f"serial() takes kernel layers (Dense, Conv, Relu, ...) or networks. "
                    f"Received: {layer!r}"
                )
        if not flat:
            raise ValueError("serial() needs at least one layer. Received: no layers")
        self.layers = tuple(flat)
        self.layouts = self._walk_back(Layout.FLAT, lambda layer, out: layer.input_layout(out))
        self.bands = self._walk_back(None, lambda layer, out: layer.input_band(out))

    def _walk_back(self, at_output, at_input) -> tuple:
        """What every layer needs at its input, walking back from the readout's need
        ``at_output``: ``at_input(layer, what the layer's output needs)``. Layouts start
        from a flat output, band radii from None (no band)."""
        needed, per_layer = at_output, []
        for layer in reversed(self.layers):
            needed = at_input(layer, needed)
            per_layer.append(needed)
        return tuple(reversed(per_layer))

    def layout_plan(self, per_example_shape) -> tuple[tuple[Layout, tuple | None], ...]:
        """``(layout, radius)`` at the input of every layer for inputs of this shape.

        `layouts`, with FULL turned into BAND (radius from `bands`) when every FULL layer
        has a band and the band's entries, summed over those layers, are at most
        `band_fraction` of FULL's; radius None for the other layouts.
        """
        shape = check_input_shape(per_example_shape)
        if shape.is_flat:
            return tuple((Layout.FLAT, None) for _ in self.layers)
        full, band_entries, full_entries = [], 0, 0
        for i, (layer, layout, radius) in enumerate(zip(self.layers, self.layouts, self.bands)):
            if layout == Layout.FULL:
                full.append(i)
                if radius is not None:
                    band_entries += band.entries(shape.spatial, radius)
                full_entries += math.prod(shape.spatial) ** 2
            shape = layer.output_shape(shape)
        use_band = (
            bool(full)
            and all(self.bands[i] is not None for i in full)
            and band_entries <= self.band_fraction * full_entries
        )
        return tuple(
            (Layout.BAND, radius) if use_band and i in full else (layout, None)
            for i, (layout, radius) in enumerate(zip(self.layouts, self.bands))
        )

    @property
    def flat_variances(self) -> bool:
        """Whether every nonlinearity's `self_variances` are one number per input (FLAT
        layout, e.g. FC networks or Flatten first), not a position map."""
        return all(
            layout == Layout.FLAT
            for layer, layout in zip(self.layers, self.layouts)
            if layer.needs_variances
        )

    def __repr__(self) -> str:
        return "serial(" + ", ".join(repr(layer) for layer in self.layers) + ")"

    def get_config(self) -> list[dict]:
        return [{"type": type(layer).__name__, **layer.get_config()} for layer in self.layers]

    # ----------------------------------------------------------------- shapes
    def output_shape(self, input_shape: Sequence[int]) -> Shape:
        """Static per-example output shape for per-example ``input_shape`` (validates)."""
        shape = check_input_shape(input_shape)
        for layer in self.layers:
            shape = layer.output_shape(shape)
        return shape

    # ----------------------------------------------------------------- kernels
    @_without_autograph
    def kernel_fn(
        self,
        x1,
        x2=None,
        get: str | Sequence[str] = ("nngp", "ntk"),
        batch_size: int | tuple[int, int] | None = None,
        memory_budget: int | None = None,
        forward_only: bool = False,
    ):
        """NNGP and/or NTK of the infinitely wide network between ``x1`` and ``x2``.

        Args:
          x1: ``(n1, ...)`` float32 or float64 inputs (NHWC images, or flat vectors for
            networks that start with Flatten/Dense). Their dtype is the dtype of the
            computation.
          x2: ``(n2, ...)`` inputs of the same per-example shape and dtype, or None for
            ``x1`` against itself (the diagonal is then exact: angle 0).
          get: 'nngp', 'ntk', or a tuple of them.
          batch_size: compute in tiles of ``batch_size`` rows (and columns; a pair
            ``(b1, b2)`` sets them apart) inside a loop, with recomputation in the
            backward pass, so that peak memory is bounded by one tile (see `tiling`).
            None (the default) plans the tiles from ``memory_budget``
            (`tiling.plan_tiles`): kernels that fit are computed in one piece.
          memory_budget: bytes one tile may use, forward and backward; None for
            `tiling.DEFAULT_MEMORY_BUDGET` (256 MiB). Ignored when ``batch_size`` is set.
          forward_only: plan the tiles for the forward pass alone (no gradient will be
            taken: evaluation, Label Solve), so that they are larger under the same
            budget (`tiling.FORWARD_FULL_LIVE_COPIES`). The values are the same; a
            gradient still works but its tiles may pass the budget.

        Returns:
          For ``get`` a string, a ``(n1, n2)`` tensor; for a tuple, a namedtuple with
          those fields.

        >>> from tfkip import kernels as k
        >>> import numpy as np
        >>> net = k.serial(k.Dense(512, 1.5, 0.1), k.Relu(), k.Dense(1, 1.5, 0.1))
        >>> net.kernel_fn(np.ones((2, 3)), None, "nngp").shape
        TensorShape([2, 2])
        """
        single = isinstance(get, str)
        gets = _check_gets(get)
        x1, x2 = self._check_inputs(x1, x2)
        out = self._planned(x1, x2, gets, batch_size, memory_budget, forward_only=forward_only)
        return out[gets[0]] if single else _namedtuple(gets)(*(out[g] for g in gets))

    def _planned(
        self, x1, x2, gets, batch_size, memory_budget, variances1=None, forward_only=False
    ):
        """``{get: (n1, n2)}`` in the tiles ``batch_size`` sets or the budget plans;
        ``variances1``: precomputed `self_variances` of ``x1`` (else computed)."""
        if batch_size is None:
            batch_size = tiling.plan_tiles(self, x1, x2, memory_budget, forward_only)
        if batch_size is None:
            return self.compute(x1, x2, gets, variances1=variances1)
        return tiling.tiled(self, x1, x2, gets, batch_size, variances1=variances1)

    @_without_autograph
    def kip_kernel_fn(
        self,
        x_support,
        x_target,
        get: str | Sequence[str] = "ntk",
        batch_size: int | tuple[int, int] | None = None,
        memory_budget: int | None = None,
        target_variances: Sequence[tf.Tensor] | None = None,
        forward_only: bool = False,
    ):
        """``(K(x_s, x_s), K(x_t, x_s))``, the two kernels of a KRR prediction, in one pass.

        Equal to ``(kernel_fn(x_support), kernel_fn(x_target, x_support))``. For pooled
        networks (position-by-position covariances; inputs of a static count) both come
        from one zipped batch of input pairs: the ``n_s (n_s + 1) / 2`` unordered support
        pairs followed by the ``n_t n_s`` target-support pairs, so the network's recursions
        (and their reverse passes) appear once in the graph instead of twice. Same
        arithmetic, half the program: for a ConvNet KIP step, half of what TensorFlow and
        XLA hold while compiling it. (Under a BAND plan the two kernels are two calls: a
        BAND layer reads every input's neighbourhood variances, shared across a cross
        kernel's rows (`tiling.plan_tiles`) but computed per pair in a zipped batch.) Other
        networks make the two calls: their per-pair work is small and their cross kernel
        starts with one product of all inputs (a matmul for Flatten-first networks), cheaper
        than a gathered batch of pairs.

        Args:
          x_support: ``(n_s, ...)`` support inputs. x_target: ``(n_t, ...)`` target inputs of
            the same per-example shape and dtype.
          get, memory_budget, forward_only: as for `kernel_fn`.
          batch_size: None to plan tiles of pairs from ``memory_budget`` (`tiling`), or
            ``b`` / ``(b1, b2)``: tiles of ``b1 b2`` pairs, as a ``b1 x b2`` tile of
            `kernel_fn` holds.
          target_variances: optional `self_variances` of ``x_target``, computed
            beforehand: then the targets' self-kernel pass is skipped. They depend on
            the targets alone, so a KIP run can compute them once for its whole target
            pool and gather them with each batch (`tfkip.train.loop.KIPTrainer` does, for
            networks whose variances are one number per input and nonlinearity).

        Returns:
          ``(k_ss, k_ts)``: ``(n_s, n_s)`` (exactly symmetric, exact diagonal) and
          ``(n_t, n_s)`` tensors for ``get`` a string, namedtuples of them for a tuple.
        """
        single = isinstance(get, str)
        gets = _check_gets(get)
        x_s, x_t = self._check_inputs(x_support, x_target)
        if target_variances is not None:
            target_variances = self.check_variances("target_variances", target_variances, x_t)
        zipped = (
            self.uses_unordered_pairs(x_s, None) and Layout.FULL in self.layouts and x_t.shape[0]
        )
        if zipped:
            # BAND nonlinearities read each input's neighbourhood variances (and their
            # gradient sums over them): in a cross kernel once per support image of a tile,
            # in zipped pairs once per pair. That outweighs the smaller program.
            zipped = all(layout != Layout.BAND for layout, _ in self.layout_plan(x_s.shape[1:]))
        if not zipped:
            plan = dict(forward_only=forward_only)
            k_ss = self._planned(x_s, None, gets, batch_size, memory_budget, **plan)
            k_ts = self._planned(
                x_t, x_s, gets, batch_size, memory_budget, target_variances, **plan
            )
        else:
            k_ss, k_ts = self._support_and_target_pairs(
                x_s, x_t, gets, batch_size, memory_budget, target_variances, forward_only
            )
        if single:
            return k_ss[gets[0]], k_ts[gets[0]]
        kernels = _namedtuple(gets)
        return kernels(*(k_ss[g] for g in gets)), kernels(*(k_ts[g] for g in gets))

    def _support_and_target_pairs(
        self, x_s, x_t, gets, batch_size, memory_budget, var_t, forward_only=False
    ):
        """``({get: K_ss}, {get: K_ts})`` from one zipped batch of pairs (`kip_kernel_fn`)."""
        n_s, n_t = x_s.shape[0], x_t.shape[0]
        rows, cols, index = symmetric_pairs(n_s)
        rows = np.concatenate([rows, np.repeat(np.arange(n_s, n_s + n_t, dtype=np.int32), n_s)])
        cols = np.concatenate([cols, np.tile(np.arange(n_s, dtype=np.int32), n_t)])
        x = tf.concat([x_s, x_t], 0)
        variances = None
        if var_t is not None:
            variances = [tf.concat(v, 0) for v in zip(self.self_variances(x_s), var_t)]
        if batch_size is None:
            pairs_per_tile = tiling.plan_pair_tiles(self, x, len(rows), memory_budget, forward_only)
        else:
            b1, b2 = tiling.check_batch_size(batch_size)
            pairs_per_tile = b1 * b2
        if pairs_per_tile is None or pairs_per_tile >= len(rows):
            out = self._pairs(x, rows, cols, gets, variances)
        else:
            out = tiling.tiled_pairs(
                self, x, rows, cols, gets, pairs_per_tile, pairs_per_tile, variances
            )
        n_sym = n_s * (n_s + 1) // 2
        k_ss = {g: tf.gather(v[:n_sym], index) for g, v in out.items()}
        k_ts = {g: tf.reshape(v[n_sym:], [n_t, n_s]) for g, v in out.items()}
        return k_ss, k_ts

    def _check_inputs(self, x1, x2):
        x1 = as_float_tensor("x1", x1)
        if x2 is not None:
            x2 = as_float_tensor("x2", x2)
            if x1.dtype != x2.dtype:
                raise ValueError(
                    f"x1 and x2 must have the same dtype. Received: x1.dtype={x1.dtype.name}, "
                    f"x2.dtype={x2.dtype.name}"
                )
            if x1.shape.rank != x2.shape.rank:
                raise ValueError(
                    f"x1 and x2 must have the same rank. Received: x1.shape={x1.shape}, "
                    f"x2.shape={x2.shape}"
                )
            if x1.shape[1:] != x2.shape[1:]:
                raise ValueError(
                    "x1 and x2 must have the same per-example shape (and channel count). "
                    f"Received: x1.shape={x1.shape}, x2.shape={x2.shape}"
                )
        shape = self.output_shape(x1.shape[1:])  # validates the whole network
        if not shape.is_flat:
            raise ValueError(
                f"The network's output is spatial (per-example shape {shape.spatial}); end it "
                f"with Flatten() or GlobalAvgPool() before the readout. Network: {self!r}"
            )
        return x1, x2

    def compute(self, x1, x2, gets, same=None, variances1=None, variances2=None):
        """Untiled kernels ``{get: (n1, n2)}``.

        ``same`` overrides the identical-pairs mask and ``variances1/2`` supply
        precomputed `self_variances` (both used by `tiling`). For ``x2`` None on image
        inputs (of a static count) only the ``n (n + 1) / 2`` unordered pairs are computed
        (`symmetric`).
        """
        if same is None and self.uses_unordered_pairs(x1, x2):
            return self.symmetric(x1, gets, variances1)
        if variances1 is None:
            variances1 = self.self_variances(x1)
        if variances2 is None:
            variances2 = variances1 if x2 is None else self.self_variances(x2)
        if same is None and x2 is None:
            same = tf.cast(tf.eye(tf.shape(x1)[0]), tf.bool)
        kernel, layers = self._input_kernel(x1, x1 if x2 is None else x2, "ntk" in gets)
        return self._apply_layers(kernel.replace(same=same), layers, variances1, variances2, gets)

    def uses_unordered_pairs(self, x1, x2) -> bool:
        """Whether ``K(x1, x2)`` is computed from the ``n (n + 1) / 2`` unordered pairs of
        ``x1`` (`symmetric`): ``x2`` None, image inputs of a static count."""
        return x2 is None and bool(x1.shape[0]) and self.layouts[0] != Layout.FLAT

    def compute_pairs(self, a, b, gets, same, variances_a, variances_b):
        """Kernels ``{get: (P,)}`` of the pairs ``(a[p], b[p])`` (both ``(P, ...)``).

        ``same`` is a bool ``(P,)`` mask of identical pairs; ``variances_a/b`` are the
        `self_variances` of ``a`` and ``b``.
        """
        kernel, layers = self._input_kernel(a, b, "ntk" in gets, zipped=True)
        kernel = kernel.replace(same=same[:, None])
        out = self._apply_layers(kernel, layers, variances_a, variances_b, gets)
        return {g: value[:, 0] for g, value in out.items()}

    def symmetric(self, x, gets, variances=None):
        """``{get: (n, n)}`` of ``x`` with itself from its ``n (n + 1) / 2`` unordered pairs.

        The upper-triangle pairs ``(i, j), i <= j`` are computed as one zipped batch and
        gathered into both triangles, so the result is exactly symmetric and costs about
        half of the full ``n x n`` pass.
        """
        rows, cols, index = symmetric_pairs(x.shape[0])
        out = self._pairs(x, rows, cols, gets, variances)
        return {g: tf.gather(value, index) for g, value in out.items()}

    def _pairs(self, x, rows, cols, gets, variances=None):
        """Kernels ``{get: (P,)}`` of the pairs ``(x[rows[p]], x[cols[p]])``, one batch;
        identical where ``rows == cols`` (exact self-kernel entries)."""
        if variances is None:
            variances = self.self_variances(x)
        a, b, same, va, vb = gather_pairs(x, variances, rows, cols)
        return self.compute_pairs(a, b, gets, same, va, vb)

    def _apply_layers(self, kernel, layers, variances1, variances2, gets):
        variances = iter(zip(variances1, variances2))
        for layer, layout in layers:
            kernel = _to_layout(kernel, layout)
            if layer.needs_variances:
                kernel = kernel.replace(variances=next(variances))
            kernel = layer.apply(kernel)
        return {g: _dense(getattr(kernel, g), kernel.nngp) for g in gets}

    @_without_autograph
    def self_variances(self, x) -> list[tf.Tensor]:
        """Variances of each input at every nonlinearity: the self-kernel pass.

        Returns one tensor per nonlinearity, ``(n,)`` for flat layers and ``(n, H, W)``
        (the position-diagonal) for spatial ones. Costs O(n), not O(n^2). Under a BAND
        plan, more inputs than one cache-sized tile holds (`tiling.band_tile_pairs`) are
        computed in chunks of that many (`tiling.tiled_self_variances`): the same values,
        with memory bounded by one chunk and the passes kept in the caches.
        """
        x = as_float_tensor("x", x)
        if x.shape[0] is not None and tiling.uses_band(self, x):
            size = tiling.band_tile_pairs(self, x.shape[1:], x.dtype.size)
            if x.shape[0] > size:
                return tiling.tiled_self_variances(self, x, size)
        kernel, layers = self._input_kernel(x, None, False)
        variances = []
        for layer, layout in layers:
            kernel = _to_layout(kernel, layout)
            if layer.needs_variances:
                variances.append(_position_diagonal(kernel))
            kernel = layer.apply(kernel)
        return variances

    def check_variances(self, name: str, variances, x) -> list[tf.Tensor]:
        """``variances`` as a list of tensors, checked against `self_variances` of ``x``:
        one per nonlinearity, each ``(n, ...)`` of that shape and ``x``'s dtype."""
        expected = self.self_variances(tf.zeros([0, *x.shape[1:]], x.dtype))  # shapes only
        if isinstance(variances, (tf.Tensor, np.ndarray)) or len(variances) != len(expected):
            received = (
                f"a tensor of shape {list(np.shape(variances))}"
                if isinstance(variances, (tf.Tensor, np.ndarray))
                else f"{len(variances)} of shapes {[list(np.shape(v)) for v in variances]}"
            )
            raise ValueError(
                f"{name} must be a list of {len(expected)} tensors (one per nonlinearity, "
                f"as self_variances returns). Received: {received}"
            )
        checked = []
        for k, (value, like) in enumerate(zip(variances, expected)):
            value = tf.convert_to_tensor(value, x.dtype)
            want = [x.shape[0], *like.shape[1:]]
            if value.shape.as_list() != want:
                raise ValueError(
                    f"{name}[{k}] must have shape {want} (the inputs' self_variances). "
                    f"Received: shape={value.shape.as_list()}"
                )
            checked.append(value)
        return checked

    def _input_kernel(self, x1, x2, want_ntk, zipped=False):
        """The input covariance ``<x_p, x'_q> / C`` in the first layer's layout.

        With ``x2`` None, the self kernel of ``x1`` (``batch_ndim=1``); with ``zipped``,
        the kernel of the pairs ``(x1[p], x2[p])`` (batch shape ``(P, 1)``). Returns the
        kernel and the layers still to apply (a first Flatten, or a first Conv of a pooled
        network, is applied here).
        """
        plan = self.layout_plan(x1.shape[1:])
        layers = [(layer, layout) for layer, (layout, _) in zip(self.layers, plan)]
        shape = check_input_shape(x1.shape[1:])
        layout, radius = plan[0]
        mode = "self" if x2 is None else "zipped" if zipped else "cross"
        if not shape.is_flat and isinstance(self.layers[0], Flatten):
            # Flatten first: <x, x'> / (H W C) directly, same value as mean_p K(p, p).
            shape, layers, layout = self.layers[0].output_shape(shape), layers[1:], Layout.FLAT
        first_conv = layout == Layout.FULL and isinstance(self.layers[0], Conv)
        if first_conv:
            # The first conv's linear map from image patches: one matmul over fh fw C
            # features instead of a window sum over the input covariance. (A BAND
            # covariance is cheaper as C products of pixels and the conv's window sum:
            # the patches' fh fw C products per entry cost more than that sum.)
            conv = self.layers[0]
            a, b = conv.patches(x1), None if x2 is None else conv.patches(x2)
            spatial = conv.output_shape(shape).spatial
        else:
            spatial = () if layout == Layout.FLAT else shape.spatial
            positions = math.prod(spatial)
            features = math.prod(x1.shape[1:]) // positions  # static: a validated shape
            a = tf.reshape(x1, [-1, positions, features])
            b = None if x2 is None else tf.reshape(x2, [-1, positions, features])
        cov = covariance(a, b, mode, layout, spatial, radius)
        scale = 1.0 / (a.shape[-1] if first_conv else shape.channels)
        kernel = Kernel(
            values=(cov * tf.constant(scale, cov.dtype))[None],
            ntk_state="zero" if want_ntk else "none",
            batch_ndim=1 if x2 is None else 2,
            layout=layout,
            shape=shape,
            zipped=zipped,
        )
        if first_conv:
            return conv.update(kernel, kernel.values), layers[1:]
        return kernel, layers


def serial(*layers: Layer) -> Network:
    """Composes layers (or networks) in order, like neural-tangents' ``stax.serial``.

    >>> from tfkip import kernels as k
    >>> net = k.serial(k.Conv(128, (3, 3), padding="SAME", W_std=2**0.5, b_std=0.1),
    ...                k.Relu(), k.Flatten(), k.Dense(10, 2**0.5, 0.1))
    >>> net.layouts[0]
    <Layout.DIAG: 'diag'>
    """
    return Network(layers)


def _to_layout(kernel: Kernel, layout: Layout) -> Kernel:
    """Drops the off-diagonal positions when a layer needs only DIAG (after pooling)."""
    if kernel.layout in (Layout.FULL, Layout.BAND) and layout == Layout.DIAG:
        to_diag = full_to_diag if kernel.layout == Layout.FULL else band.center
        return kernel.stacked().map_linear(to_diag).replace(layout=Layout.DIAG)
    return kernel


def _position_diagonal(kernel: Kernel) -> tf.Tensor:
    """The NNGP of every position with itself: ``(n, H, W)``, or ``(n,)`` when flat."""
    if kernel.layout == Layout.FULL:
        return full_to_diag(kernel.nngp)
    if kernel.layout == Layout.BAND:
        return band.center(kernel.nngp)
    return kernel.nngp


def _dense(value, like):
    if isinstance(value, float):  # an NTK that stayed identically zero
        return tf.zeros_like(like) + value
    return value


def _check_gets(get) -> tuple[str, ...]:
    gets = (get,) if isinstance(get, str) else tuple(get)
    if not gets or any(g not in GETS for g in gets):
        raise ValueError(f"get must be 'nngp', 'ntk' or a tuple of them. Received: get={get!r}")
    return gets
