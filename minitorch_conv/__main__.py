"""`minitorch-conv` / `python -m minitorch_conv`: the main job."""
import argparse
import sys

from . import __version__, _kernels, demo
from .random import manual_seed


def info(args=None):
    print(f"minitorch_conv {__version__}")
    print(f"SIMD path: {_kernels.simd_path()} (set MINITORCH_CONV_SIMD=avx512|avx2|generic to force one)")
    print(f"threads:   {_kernels.get_num_threads()} (mc.set_num_threads or OMP_NUM_THREADS)")


def run_demo(args):
    info()
    manual_seed(args.seed)
    print("\nMNIST-1D (Greydanus 2020), generated offline: 4000 train / 1000 test signals of length 40")
    data = demo.mnist1d()
    result = demo.train(demo.mlp(), data, seconds=args.seconds, steps=args.steps, seed=args.seed)
    print(f"MLP 40-100-100-10, Adam lr 1e-2, batch 100: {result['steps']} steps in {result['seconds']:.1f} s")
    print(f"test accuracy {100 * result['test_accuracy']:.1f}%   (paper: 68% for an MLP)")


def parser():
    p = argparse.ArgumentParser(prog="minitorch-conv", description=__doc__)
    commands = p.add_subparsers(dest="command")
    d = commands.add_parser("demo", help="train an MLP on MNIST-1D and print its test accuracy (the default)")
    d.add_argument("--seconds", type=float, default=8.0, help="training time budget (default 8)")
    d.add_argument("--steps", type=int, default=6000, help="at most this many Adam steps (default 6000)")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(run=run_demo)
    commands.add_parser("info", help="version, SIMD path and thread count").set_defaults(run=info)
    return p


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    p = parser()
    args = p.parse_args(argv if argv and argv[0] in ("demo", "info", "-h", "--help") else ["demo", *argv])
    try:
        args.run(args)
    except demo.MissingExtra as err:
        print(f"minitorch-conv: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
