"""The only module that touches the compiled library (``minitorch_conv._lib``).

Thin wrappers: check what C cannot (dtypes, shapes, strides), allocate every buffer,
call C, and turn its error codes into exceptions. Environment variables read at import:

- ``OMP_NUM_THREADS``: the default thread count (else ``os.cpu_count()``).
- ``MINITORCH_CONV_SIMD``: ``avx512`` | ``avx2`` | ``generic`` forces a SIMD path (capped at
  what the CPU runs); unset or empty means the best. An unknown name warns
  (RuntimeWarning) and uses the best, so a typo never stops the package importing.
"""
import os

# libgomp reads OMP_WAIT_POLICY once, when it is loaded, i.e. when ._lib is imported
# below. Its default lets idle OpenMP threads spin for a while after every parallel
# region; interleaved with numpy's own threaded BLAS calls those spinning threads
# steal the cores, and a measured loop ran 70x slower. Passive threads sleep instead.
# setdefault: a value the user chose wins. (Too late if libgomp is already loaded.)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numbers  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

try:
    from ._lib import ffi, lib  # noqa: E402
except ImportError as err:  # most often: the source folder shadows the installed package
    raise ImportError(
        f"minitorch_conv's compiled kernels are missing next to {os.path.dirname(__file__)}: this copy was "
        "not built. Build it in place with `pip install -e .`, or run from outside the source folder "
        "so that Python imports the installed package.") from err

__all__ = [
    "simd_path", "set_simd", "available_simd", "set_num_threads", "get_num_threads",
    "gemm", "make_geometry", "im2col", "col2im",
]

_SIMD_LEVELS = {"generic": 0, "avx2": 1, "avx512": 2}
_DTYPES = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}


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


def _c_array(x):
    # ascontiguousarray alone would pass a misaligned contiguous array through.
    return np.require(x, requirements=["C_CONTIGUOUS", "ALIGNED"])


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


# ---- im2col / col2im --------------------------------------------------------------

def _triple(values, dims, fill, name, minimum):
    """values (an int for every axis, or a tuple with one entry per spatial axis)
    left-filled to 3 axes with fill."""
    if isinstance(values, numbers.Integral) and not isinstance(values, bool):
        values = (values,) * dims
    try:
        values = tuple(values)
    except TypeError:
        raise TypeError(f"make_geometry: {name} must be an int or a tuple of ints, "
                        f"got {values!r}") from None
    if len(values) != dims:
        raise ValueError(f"make_geometry: {name} has {len(values)} entries {values} but "
                         f"in_size has {dims}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"make_geometry: {name} must hold ints, got {values}")
        if v < minimum:
            raise ValueError(f"make_geometry: {name} entries must be >= {minimum}, got {values}")
    return (fill,) * (3 - dims) + tuple(int(v) for v in values)


def make_geometry(channels, in_size, out_size, kernel, stride=1, pad=0, dilation=1):
    """A cffi ``mc_geometry *`` (freed with the object). in_size is a tuple of 1-3
    spatial sizes (innermost last); every other argument is an int for all axes or a
    tuple of the same length. Everything is left-filled to 3 axes with size 1,
    stride 1, pad 0, dilation 1. No convolution arithmetic is checked here (the conv
    module does that); C reads only inside the input whatever out and pad say."""
    if isinstance(channels, bool) or not isinstance(channels, numbers.Integral):
        raise TypeError(f"make_geometry: channels must be an int, got {channels!r}")
    if channels < 0:
        raise ValueError(f"make_geometry: channels must be >= 0, got {channels}")
    if isinstance(in_size, numbers.Integral):
        in_size = (in_size,)
    dims = len(tuple(in_size))
    if not 1 <= dims <= 3:
        raise ValueError(f"make_geometry: in_size must have 1 to 3 entries, got {in_size}")
    g = ffi.new("mc_geometry *")
    g.channels = int(channels)
    fields = (("in", in_size, 1, 0), ("out", out_size, 1, 0), ("kernel", kernel, 1, 0),
              ("stride", stride, 1, 1), ("pad", pad, 0, 0), ("dilation", dilation, 1, 1))
    for name, values, fill, minimum in fields:
        # "in" is a Python keyword, hence getattr
        getattr(g, name)[0:3] = _triple(values, dims, fill, name, minimum)
    return g


def _geometry_tuple(g, name):
    return tuple(getattr(g, name)[axis] for axis in range(3))


def _check_geometry(geom, what):
    if not isinstance(geom, ffi.CData) or ffi.typeof(geom) is not ffi.typeof("mc_geometry *"):
        raise TypeError(f"{what}: geom must come from make_geometry, got {type(geom).__name__}")
    in_size = _geometry_tuple(geom, "in")
    out_size = _geometry_tuple(geom, "out")
    kernel = _geometry_tuple(geom, "kernel")
    return geom.channels, in_size, out_size, kernel


def _spatial_matches(shape, size):
    """shape (1-3 spatial dims) equals size (D, H, W) with the leading axes 1."""
    s = len(shape)
    return 1 <= s <= 3 and tuple(shape) == size[3 - s:] and all(v == 1 for v in size[:3 - s])


def im2col(x, geom):
    """x (N, C, *spatial) with 1-3 spatial dims matching the geometry's input
    -> cols (N, C*kD*kH*kW, oD*oH*oW)."""
    suffix = _suffix(x, "x", "im2col")
    channels, in_size, out_size, kernel = _check_geometry(geom, "im2col")
    if x.ndim < 3 or x.shape[1] != channels or not _spatial_matches(x.shape[2:], in_size):
        raise ValueError(f"im2col: x has shape {x.shape}, expected (N, {channels}, *spatial) "
                         f"with spatial size {in_size} (leading 1s may be dropped)")
    x = _c_array(x)
    batch = x.shape[0]
    cols = np.empty((batch, channels * int(np.prod(kernel)), int(np.prod(out_size))), x.dtype)
    fn = lib.mc_im2col_f32 if suffix == "f32" else lib.mc_im2col_f64
    _check(fn(geom, batch, _ptr(x, suffix), _ptr(cols, suffix)), "im2col")
    return cols


def col2im(cols, geom, batch):
    """The adjoint of im2col: cols (batch, C*kD*kH*kW, oD*oH*oW) -> x (batch, C, D, H, W)
    (always 3 spatial axes; reshape to drop leading 1s)."""
    suffix = _suffix(cols, "cols", "col2im")
    channels, in_size, out_size, kernel = _check_geometry(geom, "col2im")
    if isinstance(batch, bool) or not isinstance(batch, numbers.Integral) or batch < 0:
        raise ValueError(f"col2im: batch must be an int >= 0, got {batch!r}")
    expected = (int(batch), channels * int(np.prod(kernel)), int(np.prod(out_size)))
    if cols.shape != expected:
        raise ValueError(f"col2im: cols has shape {cols.shape}, expected {expected} "
                         f"for batch {batch}, {channels} channels, kernel {kernel}, "
                         f"output {out_size}")
    cols = _c_array(cols)
    x = np.empty((int(batch), channels) + in_size, cols.dtype)
    fn = lib.mc_col2im_f32 if suffix == "f32" else lib.mc_col2im_f64
    _check(fn(geom, int(batch), _ptr(cols, suffix), _ptr(x, suffix)), "col2im")
    return x


# ---- import-time defaults ---------------------------------------------------------

set_num_threads(_threads_from_env())
_simd_from_env()
