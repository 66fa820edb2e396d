"""The benchmark suite: every shared workload (workloads.json), forward and forward + backward, at
each thread count, for each of our algorithms beside a plain numpy baseline and PyTorch (when it
is installed), all interleaved in one run so a noisy neighbour hits every implementation alike.

(numpy's rounds follow the others: its BLAS threads spin after each call and would slow
whatever ran next.) The table gives median milliseconds, the peak memory of one call (MB of
resident memory it adds, measured after the timing: peak_memory_mb), GFLOP/s (2 x multiply-adds of the forward; forward + backward
counts three times that), the percentage of a peak this suite measures itself (a C loop of
independent FMAs on the SIMD path in force, run in the same shuffled rounds as the implementations, so
that a noisy neighbour slows it alike: median against median), and speed relative to torch and to numpy (their time /
ours: above 1 means we are faster). Results go to a JSON file and, with matplotlib, a PNG plot.

    minitorch-conv bench [--quick] [--threads 1 2] [--only NAME ...] [--json PATH] [--plot PATH]
"""
import contextlib
import ctypes
import gc
import json
import math
import os
import platform
import statistics
import time

import numpy as np

from . import _kernels
from . import functional as F
from .tensor import from_numpy

WORKLOADS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "workloads.json")
CONV_OPS = {"conv1d": 1, "conv2d": 2, "conv3d": 3}
POOL_OPS = ("max_pool2d", "avg_pool2d")
MODES = ("forward", "forward+backward")


# -- the numpy baselines ---------------------------------------------------------------------------
def _tap(xp, offset, stride, out):
    """xp[..., k : k + s*(o-1) + 1 : s] on every spatial axis: one kernel tap over all outputs."""
    return xp[(Ellipsis, *(slice(k, k + s * (o - 1) + 1, s) for k, s, o in zip(offset, stride, out)))]


def numpy_conv(x, w, stride, padding, groups, grad_out=None):
    """The textbook baseline: im2col with numpy slicing, then matmul; backward by the same means."""
    nd, (n, c) = x.ndim - 2, x.shape[:2]
    kernel, pad = w.shape[2:], [(0, 0), (0, 0)] + [(padding, padding)] * nd
    out = [(size + 2 * padding - k) // stride + 1 for size, k in zip(x.shape[2:], kernel)]
    strides = (stride,) * nd
    xp = np.pad(x, pad)
    cols = np.stack([_tap(xp, o, strides, out) for o in np.ndindex(*kernel)], axis=2)  # N, C, K, *out
    taps = cols.shape[2]
    cols = cols.reshape(n, groups, c // groups * taps, -1)
    wg = w.reshape(groups, w.shape[0] // groups, -1)
    y = np.matmul(wg[None], cols)  # N, G, C_out/G, L
    if grad_out is None:
        return y
    gy = grad_out.reshape(y.shape)
    grad_w = np.einsum("ngol,ngkl->gok", gy, cols, optimize=True).reshape(w.shape)
    grad_cols = np.matmul(wg.transpose(0, 2, 1)[None], gy).reshape(n, c, taps, *out)
    grad_xp = np.zeros_like(xp)
    for i, o in enumerate(np.ndindex(*kernel)):
        _tap(grad_xp, o, strides, out)[...] += grad_cols[:, :, i]
    return y, grad_xp[(Ellipsis, *(slice(p, p + s) for (p, _), s in zip(pad[2:], x.shape[2:])))], grad_w


def numpy_pool(op, x, kernel, stride, grad_out=None):
    """Stack the kernel taps (one strided view each), reduce, and send the gradient back tap by tap."""
    out = [(n - k) // s + 1 for n, k, s in zip(x.shape[2:], kernel, stride)]
    taps = np.stack([_tap(x, o, stride, out) for o in np.ndindex(*kernel)])
    first = taps.argmax(0) if op == "max_pool2d" else None
    y = np.take_along_axis(taps, first[None], 0)[0] if op == "max_pool2d" else taps.mean(0)
    if grad_out is None:
        return y
    grad_x = np.zeros_like(x)
    for i, o in enumerate(np.ndindex(*kernel)):
        share = np.where(first == i, grad_out, 0) if op == "max_pool2d" else grad_out / len(taps)
        _tap(grad_x, o, stride, out)[...] += share
    return y, grad_x


# -- one workload, every implementation --------------------------------------------------------------
def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def conv_case(spec, rng, algorithms):
    """(forward FLOPs, {implementation: {mode: callable}}) for a convolution workload."""
    x = rng.standard_normal((spec["N"], spec["C_in"], *spec["spatial"])).astype(np.float32)
    w = rng.standard_normal((spec["C_out"], spec["C_in"] // spec["groups"], *spec["kernel"])).astype(np.float32)
    args = dict(stride=spec["stride"], padding=spec["padding"], groups=spec["groups"])
    conv = getattr(F, spec["op"])
    cost = F.conv_cost(x.shape, w.shape, **args)
    grad = rng.standard_normal(cost.output_shape).astype(np.float32)
    impls = {}
    for algorithm in algorithms:
        def forward(algorithm=algorithm):
            return conv(from_numpy(x), from_numpy(w), algorithm=algorithm, **args)  # views, as torch.from_numpy

        def both(algorithm=algorithm):  # leaves viewing x and w, as torch's: no copy timed
            xt, wt = from_numpy(x).requires_grad_(), from_numpy(w).requires_grad_()
            conv(xt, wt, algorithm=algorithm, **args).backward(from_numpy(grad))
        impls[f"ours:{algorithm}"] = {"forward": forward, "forward+backward": both}
    impls["numpy"] = {"forward": lambda: numpy_conv(x, w, spec["stride"], spec["padding"], spec["groups"]),
                      "forward+backward": lambda: numpy_conv(x, w, spec["stride"], spec["padding"],
                                                             spec["groups"], grad)}
    torch = _torch()
    if torch is not None:
        tconv, tgrad = getattr(torch.nn.functional, spec["op"]), torch.from_numpy(grad)

        def tforward():
            with torch.no_grad():
                return tconv(torch.from_numpy(x), torch.from_numpy(w), **args)

        def tboth():
            xt, wt = torch.from_numpy(x).requires_grad_(), torch.from_numpy(w).requires_grad_()
            tconv(xt, wt, **args).backward(tgrad)
        impls["torch"] = {"forward": tforward, "forward+backward": tboth}
    return 2 * cost.multiplications, impls


def pool_case(spec, rng, algorithms):
    """(None: pooling has no FLOP count worth quoting, {implementation: {mode: callable}})."""
    x = rng.standard_normal((spec["N"], spec["C_in"], *spec["spatial"])).astype(np.float32)
    kernel, stride = tuple(spec["kernel"]), (spec["stride"],) * len(spec["kernel"])
    pool = getattr(F, spec["op"])
    grad = rng.standard_normal(pool(from_numpy(x), kernel, stride).shape).astype(np.float32)

    def both():
        pool(from_numpy(x).requires_grad_(), kernel, stride).backward(from_numpy(grad))
    impls = {"ours:auto": {"forward": lambda: pool(from_numpy(x), kernel, stride), "forward+backward": both},
             "numpy": {"forward": lambda: numpy_pool(spec["op"], x, kernel, stride),
                       "forward+backward": lambda: numpy_pool(spec["op"], x, kernel, stride, grad)}}
    torch = _torch()
    if torch is not None:
        tpool, tgrad = getattr(torch.nn.functional, spec["op"]), torch.from_numpy(grad)

        def tforward():
            with torch.no_grad():
                return tpool(torch.from_numpy(x), kernel, stride)

        def tboth():
            tpool(torch.from_numpy(x).requires_grad_(), kernel, stride).backward(tgrad)
        impls["torch"] = {"forward": tforward, "forward+backward": tboth}
    return None, impls


def _status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"no {field} in /proc/self/status")


def peak_memory_mb(fn, calls=2):
    """The resident memory one call of fn adds at its peak, in MB (2**20 bytes): free heap pages
    handed back first (malloc_trim), the kernel's high-water mark reset to the current resident
    size (writing 5 to /proc/self/clear_refs), fn run, the new high-water mark less the old
    resident size; the least of `calls` calls, so that one-time allocations (a first call's
    caches, thread stacks) do not count. Everything a call touches counts (outputs, workspaces,
    C scratch, torch's buffers); memory it allocates and never touches does not. Linux with glibc
    only, else None."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
        peaks = []
        for _ in range(calls):
            trim(0)
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            before = _status_kb("VmRSS")
            fn()
            peaks.append((_status_kb("VmHWM") - before) / 1024)
        return min(peaks)
    except (OSError, AttributeError):
        return None


@contextlib.contextmanager
def without_gc():
    """Python's cyclic garbage collector off for the timed rounds, as timeit does: a collection lands
    in whichever call makes the allocation that triggers it (measured with torch imported, during
    bench_threads: collections of the middle generation 1.7 ms each, of the oldest 54 ms)."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def measure(fns, repeats):
    """Median seconds of each callable over `repeats` rounds. Each round takes the callables in a
    shuffled order (a fixed seed), so that a noisy neighbour slows them alike, and calls each one twice
    back to back, timing the second: what ran just before moves a call's time a lot (measured: lenet_c1's
    forward 1.41x as long right after the peak loop, 1.17x after torch, strided's 1.15x after the direct
    loops, than right after itself), and with one timed call each the same order every row put ours:auto
    behind torch in three rounds of seven and ours:im2col, the same kernel, behind ours:auto in three,
    which made auto 6-9% slower than im2col over the suite."""
    names = list(fns)
    times = {name: [] for name in names}
    order = np.random.default_rng(0)
    with without_gc():
        for _ in range(repeats):
            for name in order.permutation(names):
                fns[name]()
                start = time.perf_counter()
                fns[name]()
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


_numpy_limit = None


def set_threads(n):
    """n threads for us, torch and (through threadpoolctl, when installed) numpy's BLAS alike."""
    global _numpy_limit
    _kernels.set_num_threads(n)
    torch = _torch()
    if torch is not None:
        torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    if _numpy_limit is not None:
        _numpy_limit.restore_original_limits()
    _numpy_limit = threadpool_limits(n, user_api="blas")


def load_workloads(path=WORKLOADS, only=None):
    with open(path) as f:
        specs = json.load(f)["workloads"]
    unknown = set(only or ()) - set(specs)
    if unknown:
        raise ValueError(f"bench: unknown workload(s) {sorted(unknown)}; known: {sorted(specs)}")
    return {name: spec for name, spec in specs.items() if not only or name in only}


def run_suite(threads=(1, 2), repeats=9, quick=False, only=None, out=print):
    """Measure everything; returns the rows (one per workload, mode, thread count and implementation)
    and the best peak GFLOP/s seen per thread count (each row's % of peak uses the peak measured in
    its own rounds)."""
    algorithms = ("auto",) if quick else ("auto", "im2col", "direct")
    rng = np.random.default_rng(0)
    rows, peaks = [], {}
    for n in threads:
        set_threads(n)
        peaks[n] = _kernels.peak_gflops()
        out(f"measured peak: {peaks[n]:.1f} GFLOP/s float32 at {n} thread(s) ({_kernels.simd_path()} FMA loop, "
            "best of 7; each row's % of peak uses the median of the peak runs interleaved with it)")
    for name, spec in load_workloads(only=only).items():
        case = conv_case if spec["op"] in CONV_OPS else pool_case
        flops, impls = case(spec, rng, algorithms)
        for n in threads:
            set_threads(n)
            for mode in MODES:
                # numpy's BLAS threads spin after each call and would slow whatever runs next (measured:
                # ours 4x slower right after numpy at 2 threads), so numpy gets its own rounds afterwards.
                peak_runs = []
                timed = {impl: fns[mode] for impl, fns in impls.items() if impl != "numpy"}
                timed["peak"] = lambda: peak_runs.append(_kernels.peak_gflops(seconds=0.02, runs=1))
                seconds = measure(timed, repeats)
                del seconds["peak"]
                peak = statistics.median(peak_runs[1::2])  # the timed calls: each pair's second
                seconds.update(measure({"numpy": impls["numpy"][mode]}, repeats))
                memory = {impl: peak_memory_mb(fns[mode]) for impl, fns in impls.items()}
                work = None if flops is None else flops * (3 if mode == "forward+backward" else 1)
                for impl, s in seconds.items():
                    gflops = None if work is None else work / s / 1e9
                    rows.append(dict(workload=name, mode=mode, threads=n, impl=impl, ms=s * 1e3,
                                     peak_mb=memory[impl], gflops=gflops, peak_gflops=peak,
                                     peak_pct=None if gflops is None else 100 * gflops / peak,
                                     vs_torch=seconds["torch"] / s if "torch" in seconds else None,
                                     vs_numpy=seconds["numpy"] / s))
        out(f"  {name} done")
    return rows, peaks


def geomean(values):
    values = [v for v in values if v]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def format_table(rows):
    def cell(value, width, fmt):
        return f"{'-':>{width}}" if value is None else f"{value:>{width}{fmt}}"
    header = (f"{'workload':<15}{'mode':<17}{'thr':>3}  {'impl':<12}{'ms':>9}{'MB':>7}{'GFLOP/s':>9}{'% peak':>7}"
              f"{'vs torch':>9}{'vs numpy':>9}")
    lines = [header, "-" * len(header)]
    for r in rows:
        ours = r["impl"].startswith("ours")
        lines.append(f"{r['workload']:<15}{r['mode']:<17}{r['threads']:>3}  {r['impl']:<12}{r['ms']:9.2f}"
                     f"{cell(r.get('peak_mb'), 7, '.1f')}{cell(r['gflops'], 9, '.1f')}{cell(r['peak_pct'], 7, '.0f')}"
                     f"{cell(r['vs_torch'] if ours else None, 9, '.2f')}{cell(r['vs_numpy'] if ours else None, 9, '.2f')}")
    summary = []
    for mode in MODES:
        for n in sorted({r["threads"] for r in rows}):
            ratios = [r["vs_torch"] for r in rows if r["impl"] == "ours:auto" and r["mode"] == mode and r["threads"] == n]
            if any(ratios):
                summary.append(f"ours:auto vs torch, {mode}, {n} thread(s): geomean {geomean(ratios):.2f}, "
                               f"min {min(ratios):.2f}")
    return "\n".join(lines + [""] + summary)


def plot(rows, path):
    """Bars of ours:auto's speed relative to torch per workload, one colour per (mode, threads)."""
    import matplotlib
    import matplotlib.ticker
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    picked = [r for r in rows if r["impl"] == "ours:auto" and r["vs_torch"]]
    workloads = list(dict.fromkeys(r["workload"] for r in picked))
    series = sorted({(r["mode"], r["threads"]) for r in picked})
    fig, ax = plt.subplots(figsize=(11, 4.5))
    width = 0.8 / max(len(series), 1)
    for i, (mode, n) in enumerate(series):
        values = {r["workload"]: r["vs_torch"] for r in picked if (r["mode"], r["threads"]) == (mode, n)}
        ax.bar([j + i * width for j in range(len(workloads))], [values.get(w, 0) for w in workloads], width,
               label=f"{mode}, {n} thread(s)")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(workloads))], workloads, rotation=30, ha="right")
    ax.set_ylabel("speed vs torch (torch time / ours)")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))  # 0.5, 1, 2: not 5x10^-1
    ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_json(rows, peaks, path, repeats):
    os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    torch = _torch()
    with open(path, "w") as f:
        json.dump({"unit": "median milliseconds", "repeats": repeats, "simd": _kernels.simd_path(),
                   "machine": platform.machine(), "processor": platform.processor(),
                   "torch": torch.__version__ if torch else None, "numpy": np.__version__,
                   "peak_gflops": peaks, "rows": rows}, f, indent=1)


# -- the command line ----------------------------------------------------------------------------------
def add_parser(commands):
    p = commands.add_parser("bench", help="the benchmark suite: our kernels beside numpy and torch",
                            description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="3 rounds, algorithm auto only (under a minute)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default: 1 2)")
    p.add_argument("--repeats", type=int, default=None, help="rounds per measurement (default 9, quick 3)")
    p.add_argument("--only", nargs="+", help="workload names (default: all)")
    p.add_argument("--json", default="bench.json", help="where to write the results (default bench.json)")
    p.add_argument("--plot", default=None, help="also save a PNG of speed vs torch here (needs matplotlib)")
    p.set_defaults(run=run)


def run(args):
    from ._cli import CommandError
    if any(n < 1 for n in args.threads) or (args.repeats is not None and args.repeats < 1):
        raise CommandError("--threads and --repeats must be positive")
    repeats = args.repeats or (3 if args.quick else 9)
    try:
        rows, peaks = run_suite(tuple(args.threads), repeats, args.quick, args.only)
    except ValueError as err:
        raise CommandError(str(err)) from None
    print(format_table(rows))
    write_json(rows, peaks, args.json, repeats)
    print(f"\nwrote {args.json}")
    if args.plot:
        plot(rows, args.plot)
        print(f"wrote {args.plot}")
