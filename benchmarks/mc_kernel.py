"""Finite networks vs the analytic kernels: Monte-Carlo NNGP and empirical-NTK error vs width.

    python benchmarks/mc_kernel.py                          # fc, conv+flatten, pooled
    python benchmarks/mc_kernel.py --nets fc --widths 16,256,4096 --samples 100,1000

For each network (``--out_dim`` outputs, W_std = sqrt(2), b_std = 0.1, 'ntk'
parameterization, 5 inputs) and width, prints the relative Frobenius error
``||K_hat - K|| / ||K||`` (root mean square over ``--repeats`` independent estimates) of

* the Monte-Carlo NNGP from S random networks (`monte_carlo_nngp`), with the error that
  sampling alone would give for Gaussian outputs in brackets (`gaussian_standard_error`);
  the excess over it is the finite-width effect (outputs of one network correlated
  through its hidden layers, O(1/width) bias);
* the empirical NTK at initialisation (`empirical_ntk`), mean +- std over the repeats.

Cost: about 3 minutes on 2 CPU cores with the defaults (width 1024 conv nets take
minutes more each: their NTK Jacobian has ~10M parameters).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from tfkip import architectures
from tfkip import kernels as k
from tfkip.finite import build_model, empirical_ntk, gaussian_standard_error, monte_carlo_nngp
from tfkip.runtime import configure_xla

KW = dict(W_std=math.sqrt(2.0), b_std=0.1)


def nets(out_dim: int):
    pooled = k.serial(
        k.Conv(1, (3, 3), padding="SAME", **KW),
        k.Relu(),
        k.AvgPool((2, 2)),
        k.Conv(1, (3, 3), padding="SAME", **KW),
        k.Relu(),
        k.GlobalAvgPool(),
        k.Dense(out_dim, **KW),
    )
    return {
        "fc": ("FC depth 2, 64-dim inputs", architectures.get("fc", 2, num_classes=out_dim), (64,)),
        "conv": (
            "Conv depth 2 + Flatten, 6x6x2 images",
            architectures.get("conv", 2, num_classes=out_dim),
            (6, 6, 2),
        ),
        "pooled": ("Conv, AvgPool, Conv, GlobalAvgPool, 6x6x2 images", pooled, (6, 6, 2)),
    }


def rel(a, b) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def main() -> None:
    configure_xla()  # as the launchers do, before anything compiles
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nets", default="fc,conv,pooled", help="comma list of fc,conv,pooled")
    parser.add_argument("--widths", default="16,64,256", help="comma list of widths")
    parser.add_argument("--samples", default="25,100,400", help="comma list of S")
    parser.add_argument("--out_dim", type=int, default=32, help="outputs per network (k)")
    parser.add_argument("--repeats", type=int, default=3, help="estimates per cell")
    args = parser.parse_args()
    widths = [int(w) for w in args.widths.split(",")]
    samples = [int(s) for s in args.samples.split(",")]
    table = nets(args.out_dim)
    for name in args.nets.split(","):
        title, net, shape = table[name]
        x = np.random.default_rng(0).standard_normal((5, *shape))
        kernels = net.kernel_fn(x, None, ("nngp", "ntk"))
        nngp, ntk = kernels.nngp.numpy(), kernels.ntk.numpy()
        x32 = x.astype("float32")
        print(f"\n{title}, k={args.out_dim}: Monte-Carlo NNGP error (sampling-only error)")
        print("width  " + "".join(f"S={s:<17d}" for s in samples) + "empirical NTK             s")
        for width in widths:
            start = time.perf_counter()
            cells = []
            for s in samples:
                errors = []
                for r in range(args.repeats):
                    model = build_model(net, shape, width=width, seed=r)
                    mc = monte_carlo_nngp(model, x32, n_samples=s, seed=1000 * width + r)
                    errors.append(rel(mc.mean, nngp))
                sampling = np.linalg.norm(gaussian_standard_error(nngp, s, args.out_dim))
                rms = math.sqrt(np.mean(np.square(errors)))
                cells.append(f"{rms:.4f} ({sampling / np.linalg.norm(nngp):.4f})   ")
            errors = [
                rel(empirical_ntk(build_model(net, shape, width, seed=r), x32).numpy(), ntk)
                for r in range(args.repeats)
            ]
            ntk_cell = f"{np.mean(errors):.4f} +- {np.std(errors):.4f}"
            seconds = time.perf_counter() - start
            print(f"{width:<7d}" + "".join(cells) + f"{ntk_cell:<26s}{seconds:.1f}")


if __name__ == "__main__":
    main()
