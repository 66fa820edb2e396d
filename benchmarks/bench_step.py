"""A training step, whole: LeNet-5 on 28 x 28 images (batch 64) and the MNIST-1D CNN (batch 100), Adam,
random data. For each: milliseconds per step (median of --rounds blocks of --steps steps), the share of
it spent inside our C kernels and their thin wrappers (C_ENTRY_POINTS), and minor page faults per
step — each in a fresh interpreter, asked to keep freed memory (the import-time default) and with
MINITORCH_CONV_KEEP_MEMORY=0 (the rows say what was in force), and PyTorch's step beside when it
is installed. Prints a table, writes benchmarks/results/bench_step.json.

    python benchmarks/bench_step.py [--threads 1] [--steps 50] [--rounds 7]
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

MODELS = {"lenet5": ((64, 1, 28, 28), "LeNet-5, 28x28, batch 64"),
          "mnist1d_cnn": ((100, 1, 40), "MNIST-1D CNN, batch 100")}
# Every op reaches the C kernels through one of these (conv, pooling and tiled ops through run; ReLU
# and its gradient through relu and relu_gate): the time inside them is the step's share in C.
C_ENTRY_POINTS = ("run", "relu", "relu_gate")
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "bench_step.json")


def build(nn, name):
    """The model, in minitorch_conv's nn or torch.nn (the same layer names)."""
    if name == "lenet5":
        return nn.Sequential(nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                             nn.MaxPool2d(2), nn.Flatten(), nn.Linear(256, 120), nn.ReLU(), nn.Linear(120, 84),
                             nn.ReLU(), nn.Linear(84, 10))
    return nn.Sequential(nn.Conv1d(1, 25, 5, stride=2, padding=1), nn.ReLU(),
                         nn.Conv1d(25, 25, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Conv1d(25, 25, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(125, 10))


def worker(name, impl, threads, steps, rounds):
    """One model's step timed in this interpreter: a dict for the table."""
    shape = MODELS[name][0]
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(shape).astype(np.float32), rng.integers(0, 10, shape[0])
    in_c = [0.0]
    if impl == "torch":
        import torch
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        net = build(torch.nn, name)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        x, y = torch.from_numpy(x), torch.from_numpy(y)
        loss_fn = torch.nn.functional.cross_entropy
    else:
        import minitorch_conv as mc
        from minitorch_conv import _kernels
        mc.set_num_threads(threads)
        mc.manual_seed(0)
        net = build(mc.nn, name)
        opt = mc.optim.Adam(net.parameters(), lr=1e-3)
        x = mc.tensor(x)
        loss_fn = mc.functional.cross_entropy
        originals = {entry: getattr(_kernels, entry) for entry in C_ENTRY_POINTS}

        def timed(fn):
            def call(*args):
                start = time.perf_counter()
                try:
                    return fn(*args)
                finally:
                    in_c[0] += time.perf_counter() - start
            return call
        for entry, fn in originals.items():
            setattr(_kernels, entry, timed(fn))

    def step():
        loss = loss_fn(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    try:
        for _ in range(steps):  # warm-up: caches, thread pools, the allocator's free lists
            step()
        in_c[0] = 0.0
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        blocks = []
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(steps):
                step()
            blocks.append((time.perf_counter() - start) / steps)
        faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / (rounds * steps)
    finally:
        if impl != "torch":
            for entry, fn in originals.items():
                setattr(_kernels, entry, fn)
    in_c = None if impl == "torch" else in_c[0] / (sum(blocks) * steps)
    kept = None if impl == "torch" else _kernels.keeps_freed_memory()
    return dict(model=name, impl=impl, threads=threads, step_ms=statistics.median(blocks) * 1e3,
                in_c_kernels=in_c, page_faults_per_step=faults, freed_memory_kept=kept)


def spawn(name, impl, args, keep):
    env = dict(os.environ, MINITORCH_CONV_KEEP_MEMORY="1" if keep else "0")
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", name, impl, "--threads", str(args.threads),
           "--steps", str(args.steps), "--rounds", str(args.rounds)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    row = json.loads(out.strip().splitlines()[-1])
    return dict(row, freed_memory="kept" if row["freed_memory_kept"] else "malloc default")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=50, help="steps per timed block")
    p.add_argument("--rounds", type=int, default=7, help="timed blocks (the median is reported)")
    p.add_argument("--worker", nargs=2, metavar=("MODEL", "IMPL"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(*args.worker, args.threads, args.steps, args.rounds)))
        return
    try:
        import torch  # noqa: F401
        has_torch = True
    except ImportError:
        has_torch = False
    rows = []
    print(f"{'model':<26} {'freed memory':<15} {'step ms':>8} {'in C':>6} {'faults/step':>11} {'torch ms':>9}")
    for name, (_, title) in MODELS.items():
        torch_ms = spawn(name, "torch", args, True)["step_ms"] if has_torch else None
        for keep in (True, False):
            row = dict(spawn(name, "ours", args, keep), torch_step_ms=torch_ms)
            rows.append(row)
            torch_cell = f"{torch_ms:>9.2f}" if torch_ms else f"{'-':>9}"
            print(f"{title:<26} {row['freed_memory']:<15} {row['step_ms']:>8.2f} {100 * row['in_c_kernels']:>5.0f}% "
                  f"{row['page_faults_per_step']:>11.0f} {torch_cell}")
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump(dict(threads=args.threads, steps=args.steps, rounds=args.rounds, rows=rows), f, indent=1)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
