"""minitorch-conv: chapter 9's claims, measured on this machine.

  demo         the MNIST-1D table of Greydanus (2020): a CNN's spatial prior (the default)
  efficiency   the chapter's efficiency table: convolution vs dense vs sparse matrix
  edges        edge detection on a photograph with the kernel [-1, 1]
  train        train a model on MNIST-1D or the 8x8 digits, with checkpoints
  bench        the benchmark suite: our kernels beside numpy and PyTorch
  info         version, SIMD path, threads, compiler flags

Each subcommand has --help. The commands other than info need the examples extra:
pip install 'minitorch-conv[examples]'.
"""
import argparse
import os
import platform
import sys

from . import __version__, _kernels, bench, demo, edges, efficiency, train
from ._cli import CommandError, MissingExtra

# Each module owns one subcommand: add_parser(commands) and run(args).
SUBCOMMANDS = (demo, efficiency, edges, train, bench)


def info(args=None):
    import cffi
    import numpy

    print(f"minitorch_conv {__version__}")
    print(f"SIMD path:      {_kernels.simd_path()} (chosen at run time; MINITORCH_CONV_SIMD=avx512|avx2|generic forces one)")
    print(f"threads:        {_kernels.get_num_threads()} (mc.set_num_threads or OMP_NUM_THREADS)")
    print(f"compiler flags: {_kernels.build_flags()}")
    print(f"freed memory:   {'kept for reuse' if _kernels.keeps_freed_memory() else 'malloc default'}"
          " (MINITORCH_CONV_KEEP_MEMORY=0 leaves malloc alone)")
    print(f"numpy {numpy.__version__}, cffi {cffi.__version__}, "
          f"Python {platform.python_version()} on {platform.system()} {platform.machine()}")


def parser():
    p = argparse.ArgumentParser(
        prog="minitorch-conv", description="Chapter 9's claims, measured on this machine. "
                                           "With no COMMAND, runs demo (options included).",
        epilog="Each COMMAND has --help. All but info need the examples extra: pip install 'minitorch-conv[examples]'.")
    p.add_argument("--version", action="version", version=f"minitorch_conv {__version__}")
    commands = p.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.add_parser(commands)
    commands.add_parser("info", help="version, SIMD path, threads, compiler flags",
                        description="Print the version, the SIMD path chosen at run time, the thread count, "
                                    "the C compiler flags and the numpy and cffi versions.").set_defaults(run=info)
    p.command_names = tuple(commands.choices)
    return p


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    p = parser()
    if not argv or (argv[0] not in p.command_names and argv[0] not in ("-h", "--help", "--version")):
        argv = ["demo", *argv]  # the default subcommand, options and all
    args = p.parse_args(argv)
    try:
        args.run(args)
    except (MissingExtra, CommandError) as error:
        print(f"minitorch-conv {args.command}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"minitorch-conv {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `minitorch-conv ... | head`: the reader left; stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so that exit's flush cannot fail again
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
