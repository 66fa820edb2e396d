"""`minitorch-conv efficiency`: the chapter's "Efficiency of convolution" table, measured.

The edge detector y[i, j] = x[i, j + 1] - x[i, j] (the kernel [-1, 1], "2 by 1" in the chapter) is
a linear map, so it is also a matrix with one row per output pixel and one column per input
pixel. Three ways to apply it: our convolution (2 stored floats), that matrix in CSR form (2
stored floats per row) and the same matrix dense (every entry stored, almost all of them zero).
For each image size we count stored floats and float multiplications and additions, time all
three, and check that they agree. The dense matrix is built only where it fits under a memory
cap; beyond it, its time is extrapolated from the measured sizes (time proportional to entries).
"""
import os
import time

import numpy as np

from . import functional as F
from ._cli import check_writable, positive, pyplot, require, save_figure
from .tensor import tensor

CHAPTER_SIZE = (280, 320)  # (height, width): the chapter's "320 by 280" image, width first
SIZES = ((14, 16), (28, 32), (35, 40), (56, 64), (70, 80), (112, 128), (140, 160), CHAPTER_SIZE)
QUICK_SIZES = ((14, 16), (28, 32), (56, 64), CHAPTER_SIZE)
KERNEL = np.array([[[[-1.0, 1.0]]]], dtype=np.float32)  # (C_out, C_in, kH, kW) = (1, 1, 1, 2)
FLOAT_BYTES = 4


def add_parser(commands):
    p = commands.add_parser(
        "efficiency", help="the chapter's efficiency table: convolution vs dense vs sparse matrix, measured",
        description="Count stored floats and float operations and time the [-1, 1] edge detector as a "
                    "convolution, a sparse (CSR) matrix and a dense matrix, for the chapter's 320x280 "
                    "image and smaller ones; print the chapter's table and save a log-log plot.")
    p.add_argument("--plot", metavar="PATH", default="efficiency.png", help="the PNG to write (default efficiency.png)")
    p.add_argument("--max-dense-gb", type=positive(float), default=1.0, metavar="GB",
                   help="build the dense matrix only up to this size in float32 (default 1); larger ones are extrapolated")
    p.add_argument("--quick", action="store_true", help="fewer sizes, a 64 MB dense cap and shorter timing")
    p.set_defaults(run=run)


def run(args):
    sparse = require("scipy.sparse", "scipy")
    plt = pyplot()
    check_writable(args.plot, "plot")
    sizes = QUICK_SIZES if args.quick else SIZES
    dense_cap = min(0.0625e9 if args.quick else args.max_dense_gb * 1e9, _half_the_free_memory())
    min_seconds = 0.02 if args.quick else 0.2
    rows = [measure(height, width, sparse, dense_cap, min_seconds) for height, width in sizes]
    fitted = extrapolate_dense(rows)
    chapter = next(row for row in rows if row["size"] == CHAPTER_SIZE)
    print(chapter_table(chapter, dense_cap, fitted))
    print()
    print(size_table(rows))
    figure = plot(rows, plt)
    save_figure(figure, args.plot)
    print(f"\nplot: {args.plot}")


def edge_matrix(height, width, sparse):
    """The [-1, 1] edge detector on a height x width image as a CSR matrix: row i*(W-1)+j, columns i*W+j, +1."""
    out_width = width - 1
    out_pixels = height * out_width
    rows = np.arange(out_pixels)
    first = rows // out_width * width + rows % out_width  # the input pixel under the kernel's first tap
    indices = np.stack([first, first + 1], axis=1).ravel()
    data = np.tile(KERNEL.ravel(), out_pixels)
    return sparse.csr_matrix((data, indices, np.arange(0, 2 * out_pixels + 1, 2)), shape=(out_pixels, height * width))


def _half_the_free_memory():
    """A second bound on the dense matrix, so that a generous --max-dense-gb cannot exhaust the machine."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2
    except (AttributeError, ValueError, OSError):
        return float("inf")


def best_time(function, min_seconds):
    """The fastest of repeated calls (after one warm-up), repeating for at least `min_seconds` in all."""
    function()
    times = []
    while sum(times) < min_seconds or len(times) < 3:
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
        if len(times) >= 1000:
            break
    return min(times)


def measure(height, width, sparse, dense_cap, min_seconds):
    image = np.random.default_rng(0).random((height, width), dtype=np.float32)
    x, weight, flat = tensor(image[None, None]), tensor(KERNEL), image.ravel()
    matrix = edge_matrix(height, width, sparse)
    out_pixels, in_pixels = matrix.shape
    cost = F.conv_cost(x.shape, weight.shape)
    expected = F.conv2d(x, weight).numpy().ravel()
    if not np.allclose(matrix @ flat, expected, atol=1e-6):
        raise AssertionError(f"efficiency: the sparse matrix disagrees with conv2d at {width}x{height}")
    row = {
        "size": (height, width), "pixels": height * width, "output": cost.output_shape[2:],
        "conv_floats": cost.parameters, "conv_ops": cost.muls_and_adds,
        "conv_seconds": best_time(lambda: F.conv2d(x, weight), min_seconds),
        # CSR matrix-vector product: a multiplication per stored float, (entries - 1) additions per row
        "sparse_floats": matrix.nnz, "sparse_ops": 2 * matrix.nnz - np.count_nonzero(np.diff(matrix.indptr)),
        "sparse_seconds": best_time(lambda: matrix @ flat, min_seconds),
        "dense_floats": out_pixels * in_pixels, "dense_ops": out_pixels * (2 * in_pixels - 1),
        "dense_seconds": None, "dense_measured": False,
    }
    if row["dense_floats"] * FLOAT_BYTES <= dense_cap:
        try:
            dense = matrix.toarray()
        except MemoryError:
            return row  # extrapolated like the sizes over the cap
        if not np.allclose(dense @ flat, expected, atol=1e-5):
            raise AssertionError(f"efficiency: the dense matrix disagrees with conv2d at {width}x{height}")
        row["dense_seconds"], row["dense_measured"] = best_time(lambda: dense @ flat, min_seconds), True
        del dense
    return row


def extrapolate_dense(rows):
    """Fill in the dense time where the matrix was not built, by least squares for time = c * entries.

    Returns the rows the fit used: the measured ones with at least a million entries (below
    that, call overhead dominates), or all measured ones if none is that large.
    """
    measured = [row for row in rows if row["dense_measured"]]
    used = [row for row in measured if row["dense_floats"] >= 1e6] or measured
    if used:
        c = sum(r["dense_seconds"] * r["dense_floats"] for r in used) / sum(r["dense_floats"] ** 2 for r in used)
        for row in rows:
            if not row["dense_measured"]:
                row["dense_seconds"] = c * row["dense_floats"]
    return used


def _seconds(value):
    if value is None:
        return "n/a"
    if value < 1e-3:
        return f"{value * 1e6:.0f} µs"
    return f"{value * 1e3:.2f} ms" if value < 1 else f"{value:.1f} s"


def _table(lines):
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join("   ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines)


def chapter_table(row, dense_cap, fitted):
    """The chapter's layout: rows stored floats / float muls or adds / time; columns conv, dense, sparse."""
    height, width = row["size"]
    out_height, out_width = row["output"]
    dense_gb = row["dense_floats"] * FLOAT_BYTES / 1e9
    dense_time = _seconds(row["dense_seconds"])
    if not row["dense_measured"]:
        dense_time = f"~{dense_time} (extrapolated*)"
    table = _table([
        ["", "Convolution", "Dense matrix", "Sparse matrix"],
        ["Stored floats", f"{row['conv_floats']:,}",
         f"{out_width}*{out_height}*{width}*{height} = {row['dense_floats']:,}" + _over(row["dense_floats"], "8e9"),
         f"2*{out_width}*{out_height} = {row['sparse_floats']:,}"],
        ["Float muls or adds", f"{out_width}*{out_height}*3 = {row['conv_ops']:,}",
         f"{row['dense_ops']:,}" + _over(row["dense_ops"], "16e9"),
         f"{row['sparse_ops']:,}" + (" (same as convolution)" if row["sparse_ops"] == row["conv_ops"] else "")],
        ["Time", _seconds(row["conv_seconds"]), dense_time, _seconds(row["sparse_seconds"])],
    ])
    lines = [f"Efficiency of convolution: input {width} by {height}, kernel 2 by 1 ([-1, 1], weight shape "
             f"{tuple(KERNEL.shape)}), output {out_width} by {out_height}", "", table]
    if not row["dense_measured"]:
        sizes = ", ".join(f"{r['size'][1]}x{r['size'][0]}" for r in fitted) or "none: raise --max-dense-gb"
        lines.append(f"* the dense matrix would take {dense_gb:,.1f} GB in float32, over the {dense_cap / 1e9:.3g} GB cap, "
                     f"so it was never allocated;\n  its time is extrapolated as proportional to its entries "
                     f"from the sizes that fit ({sizes})")
    return "\n".join(lines)


def _over(value, bound):
    """' > 8e9' when value exceeds the bound written as in the chapter."""
    return f" > {bound}" if value > float(bound) else ""


def size_table(rows):
    lines = [["image", "muls+adds", "stored floats:", "", "", "time:", "", ""],
             ["(W x H)", "(conv = sparse)", "conv", "sparse", "dense", "conv", "sparse", "dense"]]
    for row in rows:
        height, width = row["size"]
        dense = _seconds(row["dense_seconds"]) + ("" if row["dense_measured"] else " (est.)")
        lines.append([f"{width} x {height}", f"{row['conv_ops']:,}", f"{row['conv_floats']:,}",
                      f"{row['sparse_floats']:,}", f"{row['dense_floats']:,}",
                      _seconds(row["conv_seconds"]), _seconds(row["sparse_seconds"]), dense])
    return "Against image size (each time the fastest of repeated runs):\n" + _table(lines)


def plot(rows, plt):
    pixels = [row["pixels"] for row in rows]
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    # The sparse matrix is drawn hollow and dashed: in the middle panel it lies exactly on the convolution.
    styles = {"conv": ("convolution", dict(fmt="o-", markersize=8)),
              "sparse": ("sparse matrix (CSR)", dict(fmt="s--", mfc="none")),
              "dense": ("dense matrix", dict(fmt="^-"))}
    for axis, quantity, title in zip(axes, ("floats", "ops", "seconds"),
                                     ("stored floats", "float multiplications + additions", "time (s), measured")):
        for method, (label, style) in styles.items():
            style = dict(style)
            fmt = style.pop("fmt")
            values = [row[f"{method}_{quantity}"] for row in rows]
            if method == "dense" and quantity == "seconds":
                measured = [(p, v) for p, v, row in zip(pixels, values, rows) if row["dense_measured"]]
                estimated = [(p, v) for p, v, row in zip(pixels, values, rows) if not row["dense_measured"]]
                if measured:
                    axis.plot(*zip(*measured), fmt, label=label, **style)
                if estimated:
                    axis.plot(*zip(*(measured[-1:] + estimated)), "^--", mfc="none", color=axis.lines[-1].get_color()
                              if measured else None, label="dense, extrapolated (does not fit)")
            else:
                axis.plot(pixels, values, fmt, label=label, **style)
        axis.set(xscale="log", yscale="log", xlabel="input pixels (width x height)", title=title)
        axis.grid(True, which="major", alpha=0.3)
    axes[0].legend()
    axes[2].legend()
    height, width = CHAPTER_SIZE
    figure.suptitle(f"The [-1, 1] edge detector on images up to {width}x{height}: "
                    "convolution vs the equivalent matrices")
    figure.tight_layout()
    return figure

