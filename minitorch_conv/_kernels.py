"""The only module that touches the compiled library (``minitorch_conv._lib``).

Thin wrappers that turn C's error codes into exceptions: `gemm` checks what C cannot (dtypes,
shapes, strides) and allocates its result; `run` calls any geometry kernel (im2col, conv, tiled,
pool) on arrays its caller has checked and allocated; `relu` and `relu_gate` are ReLU and its
gradient, elementwise. Environment variables read at import:

- ``OMP_NUM_THREADS``: the default thread count (else ``os.cpu_count()``).
- ``MINITORCH_CONV_SIMD``: ``avx512`` | ``avx2`` | ``generic`` forces a SIMD path (capped at
  what the CPU runs); unset or empty means the best. An unknown name warns
  (RuntimeWarning) and uses the best, so a typo never stops the package importing.
- ``MINITORCH_CONV_KEEP_MEMORY``: ``0`` leaves malloc's thresholds alone (see `keeps_freed_memory`).
"""
import os

# libgomp reads OMP_WAIT_POLICY once, when it is loaded, i.e. when ._lib is imported
# below. Its default lets idle OpenMP threads spin for a while after every parallel
# region; interleaved with numpy's own threaded BLAS calls those spinning threads
# steal the cores, and a measured loop ran 70x slower. Passive threads sleep instead.
# setdefault: a value the user chose wins. (Too late if libgomp is already loaded.)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import functools  # noqa: E402
import numbers  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

try:
    from ._lib import ffi, lib  # noqa: E402
except ImportError as err:  # most often: the source folder shadows the installed package
    raise ImportError(
        f"minitorch_conv's compiled kernels in {os.path.dirname(__file__)} cannot be loaded ({err}). "
        "Build them in place with `pip install -e .`, or run from outside the source folder so that "
        "Python imports the installed package.") from err

__all__ = [
    "simd_path", "set_simd", "available_simd", "set_num_threads", "get_num_threads",
    "gemm", "c_geometry", "run", "conv_workspace", "relu", "relu_gate", "keeps_freed_memory",
]

_SIMD_LEVELS = {"generic": 0, "avx2": 1, "avx512": 2}
_DTYPES = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}
_CTYPES = {np.dtype(np.float32): "float[]", np.dtype(np.float64): "double[]", np.dtype(np.int64): "int64_t[]"}


def _check(rc, name):
    if rc == lib.MC_OK:
        return
    if rc == lib.MC_ERR_NOMEM:
        raise MemoryError(f"{name}: out of memory for scratch buffers")
    if rc == lib.MC_ERR_ARG:
        raise ValueError(f"{name}: argument out of range (C error {rc})")
    raise RuntimeError(f"{name}: C kernel failed with error {rc}")


# ---- SIMD path --------------------------------------------------------------------

def simd_path():
    """The SIMD path in force: "avx512", "avx2" or "generic"."""
    return ffi.string(lib.mc_simd_name()).decode()


def available_simd():
    """The paths this CPU and build can run, best first."""
    best = lib.mc_simd_best()
    return tuple(name for name, level in sorted(_SIMD_LEVELS.items(), key=lambda kv: -kv[1])
                 if level <= best)


def set_simd(name):
    """Switch the SIMD path ("avx512", "avx2", "generic" or "best"); a path the CPU does
    not run is capped to the best one it does. Returns the path in force."""
    if not isinstance(name, str):
        raise TypeError(f"set_simd: name must be a str, got {type(name).__name__}")
    key = name.strip().lower()
    if key == "best":
        lib.mc_select_simd(-1)
    elif key in _SIMD_LEVELS:
        lib.mc_select_simd(_SIMD_LEVELS[key])
    else:
        raise ValueError(f"set_simd: unknown SIMD path {name!r}; "
                         f"expected one of {sorted(_SIMD_LEVELS)} or 'best'")
    return simd_path()


def _simd_from_env():
    name = os.environ.get("MINITORCH_CONV_SIMD", "").strip().lower()
    if not name:
        lib.mc_select_simd(-1)
        return
    if name not in _SIMD_LEVELS:
        warnings.warn(f"MINITORCH_CONV_SIMD={name!r} is not one of {sorted(_SIMD_LEVELS)}; "
                      f"using the best path", RuntimeWarning, stacklevel=3)
        lib.mc_select_simd(-1)
        return
    if set_simd(name) != name:
        warnings.warn(f"MINITORCH_CONV_SIMD={name!r}: this CPU does not run it; "
                      f"using {simd_path()!r}", RuntimeWarning, stacklevel=3)


def build_flags():
    """The C compiler flags the library was built with."""
    return ffi.string(lib.mc_build_flags()).decode()


def peak_gflops(seconds=0.1, runs=7):
    """The float32 FMA peak of this machine at the current thread count and SIMD path, measured:
    the best of `runs` runs of about `seconds` each (one busy core spoils a run, not the best)."""
    iterations = max(1, int(seconds * 2e9 / 12))  # ~2 GHz, one round of 12 FMAs per ~6 cycles
    return max(lib.mc_peak_gflops(iterations) for _ in range(runs))


# ---- threads ----------------------------------------------------------------------

def set_num_threads(n):
    """Threads for every kernel from now on (an int >= 1)."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"set_num_threads: n must be >= 1, got {n}")
    lib.mc_set_num_threads(min(int(n), 2**31 - 1))


def get_num_threads():
    return lib.mc_get_num_threads()


def _threads_from_env():
    # OMP_NUM_THREADS may be a list for nested levels ("4,2"): the first entry counts.
    value = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    try:
        n = int(value)
    except ValueError:
        n = 0
    return n if n >= 1 else (os.cpu_count() or 1)


# ---- helpers ----------------------------------------------------------------------

def _suffix(x, name, what):
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{what}: {name} must be a numpy array, got {type(x).__name__}")
    try:
        return _DTYPES[x.dtype]
    except KeyError:
        raise TypeError(f"{what}: {name} must be float32 or float64, got {x.dtype}") from None


def _ptr(x, suffix):
    # The address of x's first element, valid for any strides (ffi.from_buffer would
    # insist on a contiguous buffer). The caller keeps x alive across the C call.
    return ffi.cast("float *" if suffix == "f32" else "double *", x.ctypes.data)


def _element_strides(x):
    """(array, row stride, column stride) in elements; copies only when a stride is
    negative or not a whole number of elements, or the data is misaligned."""
    s0, s1 = x.strides
    size = x.itemsize
    if s0 < 0 or s1 < 0 or s0 % size or s1 % size or not x.flags.aligned:
        x = np.ascontiguousarray(x)
        s0, s1 = x.strides
    return x, s0 // size, s1 // size


# ---- any kernel -------------------------------------------------------------------

@functools.lru_cache(maxsize=1024)
def c_geometry(geom):
    """The `mc_geometry` struct for a geometry.Geometry, spatial axes left-filled to 3 (cached: C
    only reads it, and a layer passes the same geometry every step)."""
    struct = ffi.new("mc_geometry *")
    struct.channels, struct.out_channels, struct.groups = geom.channels, geom.out_channels, geom.groups
    lead = 3 - geom.ndim
    fields = {"in": (geom.in_size, 1), "out": (geom.out_size, 1), "kernel": (geom.kernel, 1),
              "stride": (geom.stride, 1), "pad": (geom.pad, 0), "dilation": (geom.dilation, 1),
              "tile": (geom.tile or (1,) * geom.ndim, 1)}
    for name, (values, fill) in fields.items():
        getattr(struct, name)[0:3] = (fill,) * lead + tuple(values)
    return struct


def run(kernel, geom, batch, *args):
    """Call `mc_<kernel>_<f32|f64>(geometry, batch, *args)`, args in the C signature's order.

    args are numpy arrays (float arrays of one dtype, which names the kernel, and int64 index arrays)
    and plain numbers. The callers (conv.py, tiled.py, pool.py) have checked the geometry and
    allocated every array from it; here only dtype and contiguity are asserted, since C trusts both.
    """
    floats = [a.dtype for a in args if isinstance(a, np.ndarray) and a.dtype != np.int64]
    dtype = floats[-1]
    c_args = []
    for a in args:
        if isinstance(a, np.ndarray):
            if a.dtype not in (dtype, np.int64) or not a.flags.c_contiguous:
                raise TypeError(f"{kernel}: internal error: arrays must be C-contiguous {dtype} or int64, "
                                f"got {a.dtype} with strides {a.strides}")
            a = ffi.from_buffer(_CTYPES[a.dtype], a)
        c_args.append(a)
    fn = getattr(lib, f"mc_{kernel}_{_DTYPES[dtype]}")
    _check(fn(c_geometry(geom), batch, *c_args), kernel)


def conv_workspace(geom, chunk):
    """Elements of workspace the im2col h and g need for `chunk` images (c packs straight from x)."""
    n = lib.mc_conv_im2col_workspace(c_geometry(geom), chunk)
    if n < 0:
        raise ValueError(f"conv_workspace: C refused the geometry or chunk={chunk}")
    return n


# ---- the detector stage --------------------------------------------------------------

def _elementwise(kernel, *arrays):
    """A new array from mc_<kernel>_<f32|f64>(n, *arrays, out), the arrays float, of one shape and
    dtype, made C-contiguous and aligned for C."""
    arrays = [np.require(a, requirements="CA") for a in arrays]
    out = np.empty(arrays[0].shape, arrays[0].dtype)
    ctype = _CTYPES[out.dtype]
    fn = getattr(lib, f"mc_{kernel}_{_DTYPES[out.dtype]}")
    _check(fn(out.size, *(ffi.from_buffer(ctype, a) for a in arrays), ffi.from_buffer(ctype, out)), kernel)
    return out


def relu(x):
    """0 where x < 0, else x (PyTorch's clamp_min(x, 0): -0 and NaN pass): C (mc_relu) for float
    arrays, numpy for others."""
    if x.dtype not in _DTYPES:
        return np.where(x < 0, np.zeros((), x.dtype), x)
    return _elementwise("relu", x)


def relu_gate(a, g):
    """0 where a <= 0, else g (a and g of one shape): ReLU's gradient at a (PyTorch's
    threshold_backward). C (mc_relu_gate) for float arrays of one dtype, numpy for others."""
    if a.shape != g.shape:
        raise ValueError(f"relu_gate: a has shape {a.shape} but g has shape {g.shape}")
    if a.dtype != g.dtype or a.dtype not in _DTYPES:
        return np.where(a <= 0, np.zeros((), g.dtype), g)
    return _elementwise("relu_gate", a, g)


# ---- GEMM -------------------------------------------------------------------------

def gemm(a, b, out=None, accumulate=False):
    """out (=|+=) a @ b for 2-D float32/float64 arrays of one dtype and any strides.

    out, if given, is a writable (m, n) array of the same dtype with unit column
    stride (C-contiguous or rows of a larger one); accumulate=True adds to it.
    Returns out (a new C-contiguous array when None)."""
    sa = _suffix(a, "a", "gemm")
    sb = _suffix(b, "b", "gemm")
    if sa != sb:
        raise TypeError(f"gemm: a is {a.dtype} but b is {b.dtype}; they must match")
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"gemm: a and b must be 2-D, got shapes {a.shape} and {b.shape}")
    (m, k), (k2, n) = a.shape, b.shape
    if k != k2:
        raise ValueError(f"gemm: inner dimensions differ: a is {a.shape}, b is {b.shape}")
    if out is None:
        out = (np.zeros if accumulate else np.empty)((m, n), dtype=a.dtype)
    else:
        if _suffix(out, "out", "gemm") != sa:
            raise TypeError(f"gemm: out is {out.dtype} but a and b are {a.dtype}")
        if out.shape != (m, n):
            raise ValueError(f"gemm: out has shape {out.shape}, expected {(m, n)} "
                             f"for a {a.shape} @ b {b.shape}")
        if not out.flags.writeable:
            raise ValueError("gemm: out is read-only")
        rs, cs = out.strides
        bad_cols = n > 1 and cs != out.itemsize
        bad_rows = m > 1 and (rs < n * out.itemsize or rs % out.itemsize)
        if out.size and (bad_cols or bad_rows):
            raise ValueError(f"gemm: out must have unit column stride and rows that do not "
                             f"overlap, got strides {out.strides}")
    if m == 0 or n == 0:
        return out
    if (np.may_share_memory(out, a) or np.may_share_memory(out, b)
            or not out.flags.aligned):
        # C requires out not to overlap its inputs (and, like any C, aligned
        # elements): compute aside, then copy.
        tmp = np.array(out, order="C") if accumulate else np.empty((m, n), a.dtype)
        gemm(a.copy(), b.copy(), tmp, accumulate)
        out[...] = tmp
        return out
    a, a_rs, a_cs = _element_strides(a)
    b, b_rs, b_cs = _element_strides(b)
    c_rs = out.strides[0] // out.itemsize if m > 1 else n
    fn = lib.mc_gemm_f32 if sa == "f32" else lib.mc_gemm_f64
    _check(fn(m, n, k, _ptr(a, sa), a_rs, a_cs, _ptr(b, sa), b_rs, b_cs,
              1 if accumulate else 0, _ptr(out, sa), c_rs), "gemm")
    return out


# ---- import-time defaults ---------------------------------------------------------

set_num_threads(_threads_from_env())
_simd_from_env()
# A training step frees its activations and gradients and allocates them again; by default glibc
# hands such memory back to the system and every reuse faults its pages in again, zeroed: a LeNet
# step (batch 64) took 1,026 page faults and 1.3-1.45x the time at commit f6dcbc8 (README, Threads
# and SIMD). Freed memory is kept instead (process-wide, as PyTorch's caching allocator keeps its
# own), unless MINITORCH_CONV_KEEP_MEMORY=0.
_keeps_memory = os.environ.get("MINITORCH_CONV_KEEP_MEMORY", "").strip() != "0" and bool(lib.mc_keep_freed_memory())


def keeps_freed_memory():
    """Whether importing the library set malloc to keep freed memory for reuse (glibc only)."""
    return _keeps_memory
