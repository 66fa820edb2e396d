"""`minitorch-conv edges [IMAGE]`: the chapter's edge-detection figure on a real photograph.

Each output pixel is a pixel minus its left neighbour: a convolution with the two-tap kernel
[-1, 1], which responds to vertical edges and is zero wherever the image is flat.
"""
import os
import time

import numpy as np

from . import functional as F
from ._cli import CommandError, check_writable, pyplot, require, save_figure
from .tensor import tensor

KERNEL = np.array([[[[-1.0, 1.0]]]], dtype=np.float32)  # weight shape (C_out, C_in, kH, kW) = (1, 1, 1, 2)
SAMPLE = "grace_hopper.jpg"  # ships with matplotlib, so the default works offline
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601 grey


def add_parser(commands):
    p = commands.add_parser(
        "edges", help="detect vertical edges in a photograph with the [-1, 1] kernel",
        description="Convert IMAGE to grey, convolve it with the kernel [-1, 1], save the input and the "
                    "edge map side by side, and print the time and the multiply-add count.")
    p.add_argument("image", nargs="?", metavar="IMAGE",
                   help=f"a PNG or JPEG file (default: matplotlib's sample photograph {SAMPLE})")
    p.add_argument("--out", metavar="PATH", default="edges.png", help="the PNG to write (default edges.png)")
    p.set_defaults(run=run)


def run(args):
    plt = pyplot()
    path = args.image or _sample_path()
    check_writable(args.out, "output image")
    grey = read_grey(path)
    x, weight = tensor(grey[None, None]), tensor(KERNEL)
    F.conv2d(x, weight)  # warm-up: the first call pays for page faults and thread start-up
    start = time.perf_counter()
    edges = F.conv2d(x, weight).numpy()[0, 0]
    seconds = time.perf_counter() - start
    cost = F.conv_cost(x.shape, weight.shape)
    height, width = grey.shape
    print(f"{os.path.basename(path)}: {width} by {height} pixels, grey -> edge map {edges.shape[1]} by {edges.shape[0]} "
          "with the kernel [-1, 1]")
    print(f"time: {seconds * 1e3:.2f} ms (F.conv2d)")
    print(f"multiply-adds: {cost.muls_and_adds:,} ({cost.multiplications:,} multiplications + {cost.additions:,} "
          f"additions; {cost.parameters} stored floats)")
    dense_entries = edges.size * grey.size
    print(f"the same map as a dense matrix: {dense_entries:,} stored floats ({dense_entries * 4 / 1e9:,.1f} GB)")
    save_figure(figure(grey, edges, os.path.basename(path), plt), args.out, "output image")
    print(f"saved: {args.out}")


def _sample_path():
    cbook = require("matplotlib.cbook", "matplotlib")
    try:
        return str(cbook.get_sample_data(SAMPLE, asfileobj=False))
    except (OSError, ValueError) as error:
        raise CommandError(f"matplotlib's sample image {SAMPLE} is not installed ({error}); give an IMAGE") from None


def read_grey(path):
    """The image at `path` as a float32 (H, W) array in [0, 1]; CommandError if it cannot be read."""
    image_module = require("matplotlib.image", "matplotlib")
    if not os.path.exists(path):
        raise CommandError(f"no such image file: {path}")
    if os.path.isdir(path):
        raise CommandError(f"{path} is a directory, not an image file")
    try:
        image = np.asarray(image_module.imread(path))
    except Exception as error:  # Pillow and matplotlib raise many kinds for a file that is not an image
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CommandError(f"cannot read the image {path}: {reason}") from None
    if image.dtype.kind in "ui":
        image = image / np.iinfo(image.dtype).max
    if image.ndim == 3:
        image = image[..., :3] @ LUMA if image.shape[2] >= 3 else image[..., 0]  # drop alpha
    if image.ndim != 2 or min(image.shape) < 2:
        raise CommandError(f"cannot use the image {path}: shape {image.shape} is not a picture of at least 2x2 pixels")
    return np.ascontiguousarray(image, dtype=np.float32)


def figure(grey, edges, name, plt):
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 5.4))
    left.imshow(grey, cmap="gray", vmin=0, vmax=1)
    left.set_title(f"{name}, grey ({grey.shape[1]}x{grey.shape[0]})")
    # Symmetric grey: flat regions mid-grey, rising edges light, falling dark; a few extreme
    # differences would wash the rest out, so the scale stops at the 99.5th percentile.
    limit = float(np.percentile(np.abs(edges), 99.5)) or float(np.abs(edges).max()) or 1.0
    right.imshow(edges, cmap="gray", vmin=-limit, vmax=limit)
    right.set_title(f"convolved with [-1, 1] ({edges.shape[1]}x{edges.shape[0]})")
    for axis in (left, right):
        axis.axis("off")
    fig.tight_layout()
    return fig
