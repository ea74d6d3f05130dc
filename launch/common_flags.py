"""absl flags shared by every launch script: how to run (strategy, loops, checkpoints)."""

from absl import flags

from tfkip.train.strategy import STRATEGIES

flags.DEFINE_enum(
    "strategy",
    "default",
    list(STRATEGIES),
    "tf.distribute strategy: 'default' (one device, plain TF), 'one_device', 'mirrored' "
    "(all local GPUs, else --num_cpu_devices logical CPUs), 'multi_worker_mirrored' "
    "(cluster from the TF_CONFIG environment variable), 'tpu' (Cloud TPU; see --tpu).",
)
flags.DEFINE_string(
    "tpu",
    None,
    "TPU name or grpc://address for --strategy=tpu; omit (or 'local') on a Cloud TPU VM.",
)
flags.DEFINE_integer(
    "num_cpu_devices",
    None,
    "Split the CPU into this many logical devices (run and test multi-replica code on a "
    "CPU-only machine, e.g. --strategy=mirrored --num_cpu_devices=2).",
)
flags.DEFINE_integer(
    "steps_per_loop",
    50,
    "Training steps per host call (one tf.function loop; one progress line per loop).",
)
flags.DEFINE_integer(
    "checkpoint_every",
    100,
    "Steps between checkpoints in --workdir; rerunning the same command resumes there.",
)
