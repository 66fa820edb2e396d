"""Forward + backward median times of the shared convolution workloads (benchmarks/workloads.json),
for each of our algorithms, beside a plain numpy im2col + matmul baseline and PyTorch when installed.

    python benchmarks/bench_conv.py [--repeats 15] [--threads 1] [--only NAME ...] [--json PATH]

Every implementation runs once per round, interleaved, so a noisy neighbour hits all alike; the
table gives medians over the rounds and speed relative to the numpy baseline and to torch
(their time / ours: above 1 means we are faster). Results also go to a JSON file.
"""
import argparse
import json
import math
import os
import platform
import statistics
import time

import numpy as np

import minitorch_conv as mc
import minitorch_conv.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
CONV_OPS = {"conv1d": 1, "conv2d": 2, "conv3d": 3}


def _offsets(kernel):
    return np.ndindex(*kernel)


def _window(xp, offset, spec):
    """xp[..., k*d : k*d + s*(o-1) + 1 : s] for every spatial axis: one kernel tap over all outputs."""
    return xp[(Ellipsis, *(slice(k * d, k * d + s * (o - 1) + 1, s) for k, d, s, o in zip(offset, *spec)))]


class NumpyConv:
    """The textbook baseline: im2col with numpy slicing, then matmul; backward by the same means."""

    def __init__(self, x, w, stride, padding, groups):
        nd = x.ndim - 2
        self.x, self.w, self.groups, self.pad = x, w, groups, [(0, 0), (0, 0)] + [(padding, padding)] * nd
        self.kernel = w.shape[2:]
        out = [(n + 2 * padding - k) // stride + 1 for n, k in zip(x.shape[2:], self.kernel)]
        self.spec = ((1,) * nd, (stride,) * nd, out)

    def forward_backward(self, grad_out):
        n, c = self.x.shape[:2]
        xp = np.pad(self.x, self.pad)
        cols = np.stack([_window(xp, o, self.spec) for o in _offsets(self.kernel)], axis=2)  # N, C, K, *out
        k, length, g = cols.shape[2], math.prod(cols.shape[3:]), self.groups
        cols = cols.reshape(n, g, c // g * k, length)
        w = self.w.reshape(g, self.w.shape[0] // g, -1)
        y = np.matmul(w[None], cols)  # N, G, C_out/G, L
        gy = grad_out.reshape(y.shape)
        grad_w = np.einsum("ngol,ngkl->gok", gy, cols, optimize=True).reshape(self.w.shape)
        grad_cols = np.matmul(w.transpose(0, 2, 1)[None], gy).reshape(n, c, k, *self.spec[2])
        grad_xp = np.zeros_like(xp)
        for i, o in enumerate(_offsets(self.kernel)):
            _window(grad_xp, o, self.spec)[...] += grad_cols[:, :, i]
        return y, grad_xp[(Ellipsis, *(slice(p, p + s) for (p, _), s in zip(self.pad[2:], self.x.shape[2:])))], grad_w


def workloads(path):
    with open(path) as f:
        return {name: spec for name, spec in json.load(f)["workloads"].items() if spec["op"] in CONV_OPS}


def implementations(spec, rng):
    nd = CONV_OPS[spec["op"]]
    x = rng.standard_normal((spec["N"], spec["C_in"], *spec["spatial"])).astype(np.float32)
    w = rng.standard_normal((spec["C_out"], spec["C_in"] // spec["groups"], *spec["kernel"])).astype(np.float32)
    args = dict(stride=spec["stride"], padding=spec["padding"], groups=spec["groups"])
    conv = getattr(F, spec["op"])
    out_shape = conv(mc.tensor(x), mc.tensor(w), **args).shape
    grad = rng.standard_normal(out_shape).astype(np.float32)
    impls = {}
    for algorithm in ("im2col", "direct"):
        def ours(algorithm=algorithm):
            xt, wt = mc.tensor(x, requires_grad=True), mc.tensor(w, requires_grad=True)
            conv(xt, wt, algorithm=algorithm, **args).backward(mc.from_numpy(grad))
        impls[f"ours:{algorithm}"] = ours
    baseline = NumpyConv(x, w, spec["stride"], spec["padding"], spec["groups"])
    impls["numpy"] = lambda: baseline.forward_backward(grad)
    try:
        import torch
    except ImportError:
        return impls, out_shape
    tconv = getattr(torch.nn.functional, spec["op"])
    tgrad = torch.from_numpy(grad)

    def theirs():
        xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
        tconv(xt, wt, **args).backward(tgrad)
    impls["torch"] = theirs
    return impls, out_shape


def measure(impls, repeats):
    for fn in impls.values():  # warm up: first calls allocate and page in
        fn()
    times = {name: [] for name in impls}
    for _ in range(repeats):
        for name, fn in impls.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) * 1e3 for name, t in times.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--threads", type=int, default=mc.get_num_threads())
    p.add_argument("--only", nargs="*", help="workload names to run (default: all convolutions)")
    p.add_argument("--workloads", default=os.path.join(HERE, "workloads.json"))
    p.add_argument("--json", default=os.path.join(HERE, "results", "bench_conv.json"))
    args = p.parse_args(argv)
    mc.set_num_threads(args.threads)
    try:
        import torch
        torch.set_num_threads(args.threads)
    except ImportError:
        pass
    rng = np.random.default_rng(0)
    results = {}
    header = f"{'workload':<16}{'impl':<14}{'median ms':>10}{'vs numpy':>10}{'vs torch':>10}"
    print(f"forward+backward, float32, {args.threads} thread(s), median of {args.repeats}; "
          f"ratios are their time / ours\n{header}\n{'-' * len(header)}")
    for name, spec in workloads(args.workloads).items():
        if args.only and name not in args.only:
            continue
        impls, _ = implementations(spec, rng)
        ms = measure(impls, args.repeats)
        results[name] = ms
        for impl, t in ms.items():
            vs_numpy = f"{ms['numpy'] / t:10.2f}" if impl.startswith("ours") else " " * 10
            vs_torch = f"{ms['torch'] / t:10.2f}" if impl.startswith("ours") and "torch" in ms else " " * 10
            print(f"{name:<16}{impl:<14}{t:10.2f}{vs_numpy}{vs_torch}")
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"threads": args.threads, "repeats": args.repeats, "unit": "ms, median forward+backward",
                   "simd": mc.simd_path(), "machine": platform.machine(), "results": results}, f, indent=2)
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
