"""The chapter's claim, measured: max pooling makes a representation approximately invariant to
small translations of the input.

Shift a batch of random images one pixel to the right and count, position by position, how many
values stay exactly the same: in the input, in the detector stage (ReLU of a convolution), and after
max pooling the detector stage over 3x3 windows with stride 1 (the chapter's figure uses width 3).

    python examples/pooling_invariance.py [--seed 0] [--pool 3]
"""
import argparse

import numpy as np

import minitorch_conv as mc
import minitorch_conv.functional as F


def unchanged_fraction(a, b, border=3):
    """The fraction of values equal before and after the shift, away from the borders (where the
    rolled-in column and the padding live)."""
    inner = (slice(None), slice(None), slice(border, -border), slice(border, -border))
    return float((a[inner] == b[inner]).mean())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pool", type=int, default=3, help="max pooling window (odd), stride 1")
    args = p.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    images = rng.standard_normal((8, 1, 40, 40))
    shifted = np.roll(images, 1, axis=3)
    kernels = mc.tensor(rng.standard_normal((4, 1, 3, 3)), dtype="float64")
    detector = [F.relu(F.conv2d(mc.tensor(a, dtype="float64"), kernels, padding=1)) for a in (images, shifted)]
    pooled = [F.max_pool2d(d, args.pool, 1, padding=args.pool // 2) for d in detector]
    rows = [("input", unchanged_fraction(images, shifted)),
            ("detector stage (ReLU of conv)", unchanged_fraction(*(d.numpy() for d in detector))),
            (f"max pooled detector ({args.pool}x{args.pool}, stride 1)",
             unchanged_fraction(*(q.numpy() for q in pooled)))]
    print("after a one-pixel shift, the fraction of values that do not change:")
    for label, fraction in rows:
        print(f"  {label:<38}{fraction:6.3f}")
    print("(the detector units that do not change are those that are 0 both times)")

if __name__ == "__main__":
    main()
