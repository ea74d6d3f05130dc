r"""Explores RF-KIP settings: test accuracy per STEP (exact NNGP KRR) and seconds per step.

Each setting runs KIP with the random-feature NNGP (`KIPModel(kernel='rf_nngp')`, the
`KIPTrainer` loop of launch/distill.py) from the same natural support, snapshots the
support at the given steps, then scores every snapshot with the *exact* NNGP KRR on a
class-balanced subset of the test split. Accuracy per step does not depend on how busy
the machine is; seconds per step do (report them as measured under the sitting's load).

  python benchmarks/rf_explore.py --architecture=convnet --support_per_class=1 \
      --settings='m=4,w=64,t=200,lr=0.01;m=8,w=32,t=200,lr=0.01' --snapshots=50,100,200 \
      --test_size=300 --output=/tmp/rf_explore.jsonl

Setting keys: m (rf_models), w (rf_width), t (target batch), lr, loss (mse|platt),
reg, labels (0|1: learn labels).
"""

import json
import time

import numpy as np
import tensorflow as tf
from absl import app, flags

from tfkip import architectures
from tfkip.data import class_balanced_indices, prepare
from tfkip.kip.model import KIPModel
from tfkip.kip.optimizer import KIPAdam
from tfkip.train.loop import KIPTrainer

flags.DEFINE_string("dataset", "mnist_5k", "Dataset.")
flags.DEFINE_string("architecture", "convnet", "Architecture preset.")
flags.DEFINE_integer("support_per_class", 1, "Support images per class.")
flags.DEFINE_string("settings", "m=4,w=64,t=200,lr=0.01", "';'-separated settings.")
flags.DEFINE_string("snapshots", "50,100,200", "Steps at which the support is scored.")
flags.DEFINE_integer("test_size", 300, "Class-balanced test images for the exact score.")
flags.DEFINE_string("dtype", "float32", "Training dtype.")
flags.DEFINE_string("output", "/tmp/rf_explore.jsonl", "JSON lines written here.")
flags.DEFINE_integer("seed", 0, "Seed.")
flags.DEFINE_string("score_dtype", "float64", "dtype of the exact NNGP scoring.")
FLAGS = flags.FLAGS

KEYS = {"m": int, "w": int, "t": int, "lr": float, "loss": str, "reg": float, "labels": int}


def parse(setting: str) -> dict:
    out = {"m": 4, "w": 64, "t": 200, "lr": 0.01, "loss": "mse", "reg": 1e-6, "labels": 0}
    for item in setting.split(","):
        key, value = item.split("=")
        out[key] = KEYS[key](value)
    return out


def main(argv):
    del argv
    dtype = np.float32 if FLAGS.dtype == "float32" else np.float64
    data = prepare(FLAGS.dataset, dtype=dtype)
    net = architectures.get(FLAGS.architecture, num_classes=data.num_classes)
    idx = class_balanced_indices(data.labels_train, FLAGS.support_per_class, FLAGS.seed)
    test = class_balanced_indices(data.labels_test, FLAGS.test_size // data.num_classes, 1)
    x_test, y_test = data.x_test[test], data.y_test[test]
    strategy = tf.distribute.get_strategy()
    snapshots = sorted(int(s) for s in FLAGS.snapshots.split(","))
    sd = FLAGS.score_dtype
    exact = KIPModel(net, data.x_train[idx], data.y_train[idx], kernel="nngp", dtype=sd)
    classes = np.arange(data.num_classes)
    scorer = KIPTrainer(
        exact, strategy, np.zeros((10, *data.image_shape)), np.eye(10), classes, 10, 0
    )

    def score(images, labels):
        exact.support_images.assign(images.astype(sd))
        exact.support_labels.assign(labels.astype(sd))
        return scorer.evaluate(x_test.astype(sd), y_test.astype(sd), 300)

    with open(FLAGS.output, "a") as out:
        natural = score(data.x_train[idx], data.y_train[idx])
        print("natural", natural, flush=True)
        for setting in FLAGS.settings.split(";"):
            s = parse(setting)
            model = KIPModel(
                net,
                data.x_train[idx],
                data.y_train[idx],
                learn_labels=bool(s["labels"]),
                kernel="rf_nngp",
                reg=s["reg"],
                dtype=FLAGS.dtype,
                rf_models=s["m"],
                rf_width=s["w"],
                rf_seed=FLAGS.seed,
                loss=s["loss"],
                solve_dtype="float64",
            )
            model.compile(optimizer=KIPAdam(s["lr"]))
            model.optimizer.build(model.trainable_variables)
            trainer = KIPTrainer(
                model,
                strategy,
                data.x_train,
                data.y_train,
                data.labels_train,
                s["t"],
                FLAGS.seed,
            )
            step, seconds, snaps = 0, 0.0, []
            first = None
            for target in snapshots:
                start = time.perf_counter()
                loss, _ = trainer.train(step, target - step)
                took = time.perf_counter() - start
                if first is None:
                    first = took
                seconds += took
                step = target
                snaps.append((step, seconds, loss, *model.distilled()))
            # seconds per step without the first chunk (which compiles)
            later = (seconds - first) / max(snapshots[-1] - snapshots[0], 1)
            for step, secs, loss, images, labels in snaps:
                record = dict(setting=setting, step=step, train_seconds=round(secs, 1))
                record.update(s_per_step=round(later, 3), loss=float(loss), **score(images, labels))
                print(json.dumps(record), flush=True)
                out.write(json.dumps(record) + "\n")
                out.flush()


if __name__ == "__main__":
    app.run(main)
