"""How much faster two threads run our convolutions than one: the suite's workloads (by default the
four GEMM-bound ones), forward and forward + backward, algorithm "auto", one and two threads
alternating call by call in one process, so that a busy neighbour on this shared machine slows
both counts alike (the suite measures each thread count in its own rounds, minutes apart). Each
round goes over every row once, so that a row's calls spread over the whole run: a neighbour's
burst of a second or so once took the second core for all of one row's calls (its speed-up 1.0-1.1
where the rows beside it had 1.8), where now it takes a few calls of each.

    python benchmarks/bench_threads.py [--rounds 15] [--only NAME ...]
"""
import argparse
import statistics
import time

import numpy as np

from minitorch_conv import bench

GEMM_BOUND = ["cifar_3x3", "resnet_3x3", "strided", "pointwise_1x1"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=15, help="calls per thread count and mode (median)")
    p.add_argument("--only", nargs="+", default=GEMM_BOUND, help="workload names (default: %(default)s)")
    args = p.parse_args(argv)
    print(f"{'workload':<14} {'mode':<17} {'1 thread ms':>11} {'2 threads ms':>12} {'speed-up':>8}")
    rows = []  # (workload, mode, the call)
    for name, spec in bench.load_workloads(only=args.only).items():
        if spec["op"] not in ("conv1d", "conv2d", "conv3d"):
            raise SystemExit(f"bench_threads: {name} is not a convolution")
        _, impls = bench.conv_case(spec, np.random.default_rng(0), ["auto"])
        rows += [(name, mode, fn) for mode, fn in impls["ours:auto"].items()]
    times = [{1: [], 2: []} for _ in rows]
    with bench.without_gc():
        for _ in range(args.rounds):
            for (_, _, fn), row_times in zip(rows, times):
                for threads in (1, 2):
                    bench.set_threads(threads)
                    fn()  # the first call at a thread count wakes the threads
                    start = time.perf_counter()
                    fn()
                    row_times[threads].append(time.perf_counter() - start)
    for (name, mode, _), row_times in zip(rows, times):
        one, two = (statistics.median(row_times[t]) * 1e3 for t in (1, 2))
        print(f"{name:<14} {mode:<17} {one:>11.2f} {two:>12.2f} {one / two:>8.2f}")


if __name__ == "__main__":
    main()
