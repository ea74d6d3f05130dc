"""Finite networks trained on KIP-distilled images vs on the natural images KIP started from.

    python benchmarks/finite_transfer.py --distilled=/runs/fc_mnist,/runs/convnet_mnist
    python benchmarks/finite_transfer.py --distilled=/runs/convnet_mnist --width=1024 \
        --steps=5000 --seeds=0,1,2 --json=/tmp/transfer.json

For every distill workdir: the same finite network (architecture, depth and dataset from
the run's config.json unless overridden), the same recipe (`tfkip.finite.TrainConfig`:
MSE on centred labels, L2 1e-3, SGD momentum 0.9, cosine decay from the empirical-NTK
learning rate, batch 100) and the same seeds, trained once on the distilled set and once
on the natural images: the class-balanced initial support
``tfkip.data.class_balanced_indices(labels_train, per_class, seed)`` of the run (seed
from its config.json, or --support_seed), with centred one-hot labels. Prints test
accuracy (mean +- std and min..max over the seeds) and seconds per training step.

Cost (2 CPU cores, mnist_5k, 10 images, batch = 10): FC width 1024 ~0.005 s per step,
Conv depth 2 width 128 ~0.05 s, ConvNet depth 3 width 64 ~0.04 s; 2 sets x 3 seeds x
--steps steps, plus the NTK estimate and test evaluation per run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np

from tfkip import data
from tfkip.finite import TrainConfig, load_transfer_data, train_on_arrays
from tfkip.finite.train import resolve_config


def natural_support(transfer, support_seed):
    """The class-balanced natural images a run with this support size starts from."""
    prepared = transfer.prepared
    per_class = data.support_size_to_per_class(transfer.images.shape[0], prepared.num_classes)
    seed = transfer.run_config.get("seed", 0) if support_seed is None else support_seed
    idx = data.class_balanced_indices(prepared.labels_train, per_class, int(seed))
    return prepared.x_train[idx], prepared.y_train[idx].astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--distilled", required=True, help="comma list of distill workdirs")
    parser.add_argument("--seeds", default="0,1,2", help="training seeds")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--width", type=int, default=128, help="reference: 1024")
    parser.add_argument("--parameterization", default="standard")
    parser.add_argument("--loss", default="mse", choices=["mse", "xent"])
    parser.add_argument("--center", action="store_true", help="train f - f_init")
    parser.add_argument("--batch_size", type=int, default=100)
    parser.add_argument("--learning_rate", type=float, default=None, help="default: NTK")
    parser.add_argument("--architecture", default=None, help="default: the run's")
    parser.add_argument("--depth", type=int, default=None, help="default: the run's")
    parser.add_argument("--support_seed", type=int, default=None, help="default: the run's")
    parser.add_argument("--json", default=None, help="also write all results here")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    rows, results = [], []
    for run in args.distilled.split(","):
        transfer = load_transfer_data(run)
        base = resolve_config(
            TrainConfig(
                architecture=args.architecture,
                depth=args.depth,
                width=args.width,
                parameterization=args.parameterization,
                loss=args.loss,
                center=args.center,
                steps=args.steps,
                batch_size=args.batch_size,
                learning_rate=args.learning_rate,
                verbose=0,
            ),
            transfer.run_config,
        )
        natural = natural_support(transfer, args.support_seed)
        for kind, (images, labels) in (
            ("distilled", (transfer.images, transfer.labels)),
            ("natural", natural),
        ):
            runs = []
            for seed in seeds:
                config = dataclasses.replace(base, seed=seed)
                metrics = train_on_arrays(
                    images,
                    labels,
                    transfer.prepared.x_test,
                    transfer.prepared.labels_test,
                    config,
                    x_ntk=transfer.ntk_inputs(config.ntk_num_inputs),
                )
                runs.append(metrics)
                print(f"{run} {kind} seed={seed}: test_accuracy={metrics['test_accuracy']:.4f}")
            acc = np.array([m["test_accuracy"] for m in runs])
            sps = np.array([m["seconds_per_step"] for m in runs])
            label = f"{base.architecture}{'' if base.depth is None else base.depth}"
            rows.append((run, label, kind, images.shape[0], acc, sps, runs[0]["learning_rate"]))
            results.append({"run": run, "set": kind, "metrics": runs})

    print(
        f"\nwidth {args.width}, {args.parameterization}, {args.loss}, {args.steps} steps, "
        f"{'centred, ' if args.center else ''}"
        f"seeds {seeds}\n"
    )
    header = f"{'run':<40s} {'net':<10s} {'set':<10s} {'N':>4s} {'test acc (mean +- std)':>24s}"
    print(header + f" {'min..max':>13s} {'s/step':>8s} {'lr0':>9s}")
    for run, net, kind, n, acc, sps, lr in rows:
        print(
            f"{run[-40:]:<40s} {net:<10s} {kind:<10s} {n:>4d} "
            f"{acc.mean():>15.4f} +- {acc.std():.4f} {acc.min():>6.3f}..{acc.max():.3f} "
            f"{sps.mean():>8.4f} {lr:>9.4g}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
