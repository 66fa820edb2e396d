"""cffi build script for minitorch_conv._lib (out-of-line API mode).

Run by setuptools through ``setup.py``'s ``cffi_modules`` at install time, never at
import. ``csrc/mc.h`` is the single source of truth for the C interface: it is
compiled by the C sources and, with its preprocessor lines removed, it is the cdef.
"""
import glob
import os

from cffi import FFI

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CSRC = os.path.join(_ROOT, "csrc")


def _rel(path):
    # setuptools wants source paths relative to the project (the cwd of a build).
    return os.path.relpath(path)


def _cdef_text(header):
    """The header minus every preprocessor line, continuations included (cffi's
    parser does not take them; comments it strips itself)."""
    with open(header, encoding="utf-8") as f:
        lines = f.read().splitlines()
    kept, in_directive = [], False
    for line in lines:
        if in_directive or line.lstrip().startswith("#"):
            in_directive = line.rstrip().endswith("\\")
        else:
            kept.append(line)
    return "\n".join(kept)


COMPILE_ARGS = ["-O3", "-fopenmp", "-std=gnu11", "-ffp-contract=fast"]

ffibuilder = FFI()
ffibuilder.cdef(_cdef_text(os.path.join(_CSRC, "mc.h")))
ffibuilder.set_source(
    "minitorch_conv._lib",
    '#include "mc.h"',
    sources=[_rel(p) for p in sorted(glob.glob(os.path.join(_CSRC, "*.c")))],
    include_dirs=[_rel(_CSRC)],
    # Every header and source, so that editing any of them rebuilds the module.
    depends=[_rel(p) for p in sorted(glob.glob(os.path.join(_CSRC, "*")))],
    # No -march=native: the wheel must run on any x86-64; the SIMD paths are
    # chosen at run time (csrc/gemm.c). -ffp-contract=fast lets the portable
    # body use FMA where the target has it (aarch64); gnu11 for `restrict`,
    # aligned_alloc and GCC vector extensions.
    extra_compile_args=COMPILE_ARGS,
    # `minitorch-conv info` asks the library what it was built with (mc_build_flags, runtime.c).
    define_macros=[("MC_BUILD_FLAGS", '"' + " ".join(COMPILE_ARGS) + '"')],
    extra_link_args=["-fopenmp"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
