"""Forward + backward median times of the shared pooling workloads (benchmarks/workloads.json), beside
a plain numpy baseline and PyTorch when installed.

    python benchmarks/bench_pool.py [--repeats 30] [--threads 1] [--only NAME ...] [--json PATH]

As bench_conv.py: every implementation runs once per round, interleaved, medians over the rounds;
ratios are their time / ours (above 1 means we are faster). Also printed: the effective bandwidth
of our forward + backward (bytes of x, y, the indices, grad y and grad x moved once each).
"""
import argparse
import json
import math
import os
import platform

import numpy as np

import minitorch_conv as mc
import minitorch_conv.functional as F
from bench_conv import measure

HERE = os.path.dirname(os.path.abspath(__file__))
POOL_OPS = ("max_pool2d", "avg_pool2d")


def numpy_pool(op, x, kernel, stride, grad_out):
    """The textbook baseline, padding 0: stack the kernel taps (one strided view each), reduce over
    them, and send the gradient back tap by tap."""
    out = [(n - k) // s + 1 for n, k, s in zip(x.shape[2:], kernel, stride)]
    views = [(Ellipsis, *(slice(o, o + s * (m - 1) + 1, s) for o, s, m in zip(offset, stride, out)))
             for offset in np.ndindex(*kernel)]
    taps = np.stack([x[v] for v in views])
    grad_x = np.zeros_like(x)
    if op == "max_pool2d":
        first = taps.argmax(0)
        y = np.take_along_axis(taps, first[None], 0)[0]
        for i, v in enumerate(views):
            grad_x[v] += np.where(first == i, grad_out, 0)
    else:
        y = taps.mean(0)
        for v in views:
            grad_x[v] += grad_out / len(views)
    return y, grad_x


def implementations(spec, rng):
    x = rng.standard_normal((spec["N"], spec["C_in"], *spec["spatial"])).astype(np.float32)
    kernel, stride = tuple(spec["kernel"]), (spec["stride"],) * len(spec["kernel"])
    pool = getattr(F, spec["op"])
    out_shape = pool(mc.tensor(x), kernel, stride).shape
    grad = rng.standard_normal(out_shape).astype(np.float32)

    def ours():
        xt = mc.tensor(x, requires_grad=True)
        pool(xt, kernel, stride).backward(mc.from_numpy(grad))
    impls = {"ours": ours, "numpy": lambda: numpy_pool(spec["op"], x, kernel, stride, grad)}
    try:
        import torch
    except ImportError:
        return impls, x, out_shape
    tpool, tgrad = getattr(torch.nn.functional, spec["op"]), torch.from_numpy(grad)

    def theirs():
        xt = torch.tensor(x, requires_grad=True)
        tpool(xt, kernel, stride).backward(tgrad)
    impls["torch"] = theirs
    return impls, x, out_shape


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--threads", type=int, default=mc.get_num_threads())
    p.add_argument("--only", nargs="*", help="workload names to run (default: all pooling workloads)")
    p.add_argument("--workloads", default=os.path.join(HERE, "workloads.json"))
    p.add_argument("--json", default=os.path.join(HERE, "results", "bench_pool.json"))
    args = p.parse_args(argv)
    mc.set_num_threads(args.threads)
    try:
        import torch
        torch.set_num_threads(args.threads)
    except ImportError:
        pass
    with open(args.workloads) as f:
        specs = {name: spec for name, spec in json.load(f)["workloads"].items() if spec["op"] in POOL_OPS}
    rng = np.random.default_rng(0)
    results = {}
    header = f"{'workload':<12}{'impl':<8}{'median ms':>10}{'vs numpy':>10}{'vs torch':>10}{'GB/s':>8}"
    print(f"forward+backward, float32, {args.threads} thread(s), median of {args.repeats}; "
          f"ratios are their time / ours\n{header}\n{'-' * len(header)}")
    for name, spec in specs.items():
        if args.only and name not in args.only:
            continue
        impls, x, out_shape = implementations(spec, rng)
        ms = measure(impls, args.repeats)
        results[name] = ms
        indices = 8 * math.prod(out_shape) if spec["op"] == "max_pool2d" else 0
        moved = 2 * (4 * x.size + 4 * math.prod(out_shape)) + 2 * indices  # x, y, grad y, grad x; indices twice
        for impl, t in ms.items():
            ours = impl == "ours"
            vs_numpy = f"{ms['numpy'] / t:10.2f}" if ours else " " * 10
            vs_torch = f"{ms['torch'] / t:10.2f}" if ours and "torch" in ms else " " * 10
            bandwidth = f"{moved / t / 1e6:8.1f}" if ours else ""
            print(f"{name:<12}{impl:<8}{t:10.2f}{vs_numpy}{vs_torch}{bandwidth}")
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"threads": args.threads, "repeats": args.repeats, "unit": "ms, median forward+backward",
                   "machine": platform.machine(), "results": results}, f, indent=2)
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
