"""KRR vs finite networks on KIP-distilled images and on the natural images KIP started from.

    python benchmarks/finite_transfer.py --distilled=/runs/fc_mnist,/runs/conv_mnist \
        --recipes=default,reference --width=1024
    python benchmarks/finite_transfer.py --distilled=/runs/convnet_mnist --width=128 \
        --architecture=convnet --steps=1000 --seeds=0,1 --json=/tmp/transfer.json

For every distill workdir: its own KRR test accuracy (first and last record of its
``metrics.jsonl``: the natural start and the distilled set), and, for each recipe of
--recipes (`tfkip.finite.RECIPES`: 'default' keeps the kernel's accuracy, 'reference' is
``kip/nn_training``), the same finite network (architecture, depth and dataset from the
run's config.json unless overridden: a different --architecture is cross-architecture
transfer) trained with the same seeds once on the distilled set and once on the natural
images: the class-balanced initial support ``tfkip.data.class_balanced_indices(
labels_train, per_class, seed)`` of the run, with centred one-hot labels. Prints a
Markdown table: test accuracy (mean over seeds), the finite / KRR ratio, and wall
seconds per training run (NTK estimate + fit + test).

Cost (2 CPU cores, mnist_5k, 10 images): FC width 1024 ~0.015 s per step, Conv depth 2
width 256 ~0.1 s, ConvNet depth 3 width 128 ~0.1 s; 2 sets x recipes x seeds runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time

import numpy as np

from tfkip import data
from tfkip.runtime import configure_xla
from tfkip.transfer import TrainConfig, load_transfer_data, resolve_config, train_on_arrays


def natural_support(transfer, support_seed):
    """The class-balanced natural images a run with this support size starts from."""
    prepared = transfer.prepared
    per_class = data.support_size_to_per_class(transfer.images.shape[0], prepared.num_classes)
    seed = transfer.run_config.get("seed", 0) if support_seed is None else support_seed
    idx = data.class_balanced_indices(prepared.labels_train, per_class, int(seed))
    return prepared.x_train[idx], prepared.y_train[idx].astype(np.float32)


def run_krr(run: str) -> tuple[float | None, float | None]:
    """(natural-start, final) KRR test accuracy from the run's metrics.jsonl."""
    path = os.path.join(run, "metrics.jsonl")
    if not os.path.exists(path):
        return None, None
    with open(path) as f:
        records = [json.loads(line) for line in f if line.strip()]
    return records[0]["test_accuracy"], records[-1]["test_accuracy"]


def main() -> None:
    configure_xla()  # as the launchers do, before anything compiles
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--distilled", required=True, help="comma list of distill workdirs")
    parser.add_argument("--recipes", default="default,reference", help="comma list of recipes")
    parser.add_argument("--seeds", default="0", help="training seeds (comma list)")
    parser.add_argument("--steps", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--width", type=int, default=1024, help="reference: 1024")
    parser.add_argument("--batch_size", type=int, default=100)
    parser.add_argument("--architecture", default=None, help="default: the run's")
    parser.add_argument("--depth", type=int, default=None, help="default: the run's")
    parser.add_argument("--support_seed", type=int, default=None, help="default: the run's")
    parser.add_argument("--sets", default="distilled,natural", help="which sets to train on")
    parser.add_argument("--json", default=None, help="also write all results here")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    rows, results = [], []
    for run in args.distilled.split(","):
        transfer = load_transfer_data(run)
        krr = dict(zip(("natural", "distilled"), run_krr(run)))
        sets = {"distilled": (transfer.images, transfer.labels)}
        sets["natural"] = natural_support(transfer, args.support_seed)
        for kind in args.sets.split(","):
            images, labels = sets[kind]
            row = {"run": run, "set": kind, "n": int(images.shape[0]), "krr": krr[kind]}
            for recipe in args.recipes.split(","):
                base = TrainConfig(
                    recipe=recipe,
                    architecture=args.architecture,
                    depth=args.depth,
                    width=args.width,
                    steps=args.steps,
                    batch_size=args.batch_size,
                    verbose=0,
                )
                base = resolve_config(base, transfer.run_config)
                runs = []
                for seed in seeds:
                    start = time.perf_counter()
                    metrics = train_on_arrays(
                        images,
                        labels,
                        transfer.prepared.x_test,
                        transfer.prepared.labels_test,
                        dataclasses.replace(base, seed=seed),
                        x_ntk=transfer.ntk_inputs(base.ntk_num_inputs),
                    )
                    metrics["seconds"] = time.perf_counter() - start
                    runs.append(metrics)
                    print(f"{run} {kind} {recipe} seed={seed}: {metrics['test_accuracy']:.4f}")
                row["net"] = f"{base.architecture}{'' if base.depth is None else base.depth}"
                row[recipe] = float(np.mean([m["test_accuracy"] for m in runs]))
                row[f"{recipe}_seconds"] = float(np.mean([m["seconds"] for m in runs]))
                row[f"{recipe}_steps"] = base.steps
                results.append({"run": run, "set": kind, "recipe": recipe, "metrics": runs})
            rows.append(row)

    recipes = args.recipes.split(",")
    print(f"\nwidth {args.width}, seeds {seeds}\n")
    head = "| run | net | set | N | KRR |" + "".join(f" {r} (ratio, s) |" for r in recipes)
    print(head + "\n|" + " --- |" * (5 + len(recipes)))
    for row in rows:
        krr = row["krr"]
        cells = [os.path.basename(row["run"].rstrip("/")), row["net"], row["set"], str(row["n"])]
        cells.append("-" if krr is None else f"{krr:.3f}")
        for r in recipes:
            ratio = "" if not krr else f"{row[r] / krr:.2f}, "
            cells.append(f"{row[r]:.3f} ({ratio}{row[f'{r}_seconds']:.0f} s)")
        print("| " + " | ".join(cells) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "runs": results}, f, indent=2)


if __name__ == "__main__":
    main()
