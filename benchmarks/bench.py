"""The benchmark suite (minitorch_conv/bench.py), the same as `minitorch-conv bench`:

    python benchmarks/bench.py [--quick] [--threads 1 2] [--only NAME ...] [--json PATH] [--plot PATH]

Results land in benchmarks/results/ unless --json / --plot say otherwise.
"""
import os
import sys

from minitorch_conv.__main__ import main

HERE = os.path.dirname(os.path.abspath(__file__))

if __name__ == "__main__":
    defaults = ["--json", os.path.join(HERE, "results", "bench.json"),
                "--plot", os.path.join(HERE, "results", "bench.png")]
    sys.exit(main(["bench", *defaults, *sys.argv[1:]]))
