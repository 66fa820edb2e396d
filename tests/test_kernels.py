"""The C kernels through their thin wrappers: GEMM against numpy on every SIMD path,
im2col / col2im (through `run` with a Geometry) against plain numpy loops, the adjoint
identity, determinism across thread counts, and argument checking."""
import dataclasses
import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minitorch_conv import _kernels as K
from minitorch_conv.geometry import Geometry

PATHS = ["avx512", "avx2", "generic"]  # every path the x86-64 build compiles
DTYPES = [np.float32, np.float64]


# ---- GEMM -------------------------------------------------------------------------

def assert_gemm_close(got, a, b, c0=None):
    """got == c0 + a @ b within the classical error bound of a length-k dot product,
    |error| <= (k + 2) * eps * (|c0| + |a| @ |b|), computed in float64."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    want = a64 @ b64
    scale = np.abs(a64) @ np.abs(b64)
    if c0 is not None:
        want = want + c0
        scale = scale + np.abs(c0)
    eps = np.finfo(got.dtype).eps
    bound = (a.shape[1] + 2) * eps * scale + np.finfo(got.dtype).tiny
    err = np.abs(got.astype(np.float64) - want)
    assert got.shape == want.shape
    assert np.all(err <= bound), f"max error {err.max()} exceeds bound at {np.argmax(err - bound)}"


SHAPES = [(1, 1, 1), (7, 13, 5), (2, 3, 1), (1, 300, 1), (300, 1, 300), (17, 1, 29),
          (6, 16, 256), (13, 33, 257), (130, 67, 259), (300, 300, 300),
          (3, 4100, 5),     # more columns than one packed B panel (4096)
          (2310, 3, 4)]     # more rows than one packed A block (2304)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m, n, k", SHAPES)
def test_gemm_matches_numpy(simd, dtype, m, n, k):
    rng = np.random.default_rng(m * 1000003 + n * 1009 + k)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    got = K.gemm(a, b)
    assert got.dtype == dtype and got.flags.c_contiguous
    assert_gemm_close(got, a, b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m, n, k", [(0, 5, 3), (5, 0, 3), (0, 0, 0), (4, 6, 0)])
def test_gemm_empty_dimensions(simd, dtype, m, n, k):
    a, b = np.ones((m, k), dtype), np.ones((k, n), dtype)
    assert np.array_equal(K.gemm(a, b), np.zeros((m, n), dtype))
    out = np.full((m, n), 2.0, dtype)
    K.gemm(a, b, out=out, accumulate=True)
    assert np.array_equal(out, np.full((m, n), 2.0, dtype))
    out = np.full((m, n), np.nan, dtype)
    assert np.array_equal(K.gemm(a, b, out=out), np.zeros((m, n), dtype))


def strided_views(rng, shape, dtype):
    """The same logical matrix as several layouts: contiguous, transposed, every-other
    element, a column slice, a reversed (negative stride) view, a broadcast row, and a
    stride that is not a multiple of the itemsize."""
    rows, cols = shape
    x = rng.standard_normal(shape).astype(dtype)
    yield "contiguous", x
    yield "transposed", np.ascontiguousarray(x.T).T
    big = np.zeros((2 * rows + 1, 3 * cols + 2), dtype)
    big[1::2, 2::3] = x
    yield "strided", big[1::2, 2::3]
    yield "fortran", np.asfortranarray(x)
    rev = np.ascontiguousarray(x[::-1, ::-1])
    yield "negative", rev[::-1, ::-1]
    yield "broadcast", np.broadcast_to(x[:1], shape)
    buf = np.zeros(rows * (cols * x.itemsize + 3) + 16, np.uint8)
    odd = np.ndarray(shape, dtype, buffer=buf, strides=(cols * x.itemsize + 3, x.itemsize))
    odd[...] = x
    yield "odd-stride", odd


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_strided_and_transposed_views(simd, dtype):
    rng = np.random.default_rng(7)
    m, k, n = 37, 29, 45
    for (na, a), (nb, b) in itertools.product(strided_views(rng, (m, k), dtype),
                                              strided_views(rng, (k, n), dtype)):
        got = K.gemm(a, b)
        try:
            assert_gemm_close(got, np.array(a), np.array(b))
        except AssertionError as e:
            raise AssertionError(f"a {na}, b {nb}: {e}") from None


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m, n, k", [(7, 45, 29), (13, 16, 256), (6, 5, 1031), (33, 100, 3), (12, 64, 517),
                                     (7, 46, 29), (5, 7, 13)])  # 2 and 3 columns past a B block
def test_gemm_packs_either_layout_exactly(simd, dtype, m, n, k):
    """A row-major A and a column-major B (a transposed view, as the weight gradient passes) are
    packed by transposing small blocks in registers, the other layouts by straight copies; packing
    only moves numbers, so all four combinations give the same bits — for whole and partial
    slivers, and k not a multiple of the block."""
    rng = np.random.default_rng(m * 7 + n * 11 + k)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    got = K.gemm(a, b)
    for a_view, b_view in itertools.product((a, np.asfortranarray(a)), (b, np.asfortranarray(b))):
        assert K.gemm(a_view, b_view).tobytes() == got.tobytes()
    assert_gemm_close(got, a, b)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_accumulate(simd, dtype):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((70, 300)).astype(dtype)
    b = rng.standard_normal((300, 41)).astype(dtype)
    c0 = rng.standard_normal((70, 41)).astype(dtype)
    out = c0.copy()
    assert K.gemm(a, b, out=out, accumulate=True) is out
    assert_gemm_close(out, a, b, c0.astype(np.float64))
    # accumulate without out starts from zero
    assert_gemm_close(K.gemm(a, b, accumulate=True), a, b)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_into_rows_of_a_larger_array(simd, dtype):
    rng = np.random.default_rng(5)
    a = rng.standard_normal((20, 9)).astype(dtype)
    b = rng.standard_normal((9, 11)).astype(dtype)
    big = np.full((20, 15), 7.0, dtype)
    K.gemm(a, b, out=big[:, 2:13])
    assert_gemm_close(big[:, 2:13], a, b)
    assert np.all(big[:, :2] == 7) and np.all(big[:, 13:] == 7)


def test_gemm_out_overlapping_an_input():
    rng = np.random.default_rng(11)
    a = rng.standard_normal((8, 8))
    want = a @ a
    K.gemm(a, a, out=a)  # computed aside, then copied
    np.testing.assert_allclose(a, want, rtol=1e-12, atol=1e-12)


def test_gemm_known_values():
    a = np.array([[1, 2], [3, 4], [5, 6]], np.float32)
    b = np.array([[1, 0, -1], [2, 1, 0]], np.float32)
    assert np.array_equal(K.gemm(a, b), np.array([[5, 2, -1], [11, 4, -3], [17, 6, -5]],
                                                 np.float32))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m, n, k", [(130, 67, 259), (300, 300, 300), (257, 1000, 600)])
def test_gemm_bit_identical_across_thread_counts(simd, restore_threads, dtype, m, n, k):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((n, k)).astype(dtype).T  # a transposed operand too
    c0 = rng.standard_normal((m, n)).astype(dtype)
    results = []
    for threads in (1, 2, 3):
        K.set_num_threads(threads)
        plain = K.gemm(a, b)
        acc = K.gemm(a, b, out=c0.copy(), accumulate=True)
        results.append((plain.tobytes(), acc.tobytes()))
    assert results[0] == results[1] == results[2]


def test_gemm_rejects_bad_arguments():
    f32 = np.ones((3, 4), np.float32)
    with pytest.raises(TypeError, match="a must be a numpy array"):
        K.gemm([[1.0]], f32)
    with pytest.raises(TypeError, match="float32 or float64"):
        K.gemm(np.ones((3, 4), np.int64), np.ones((4, 2), np.int64))
    with pytest.raises(TypeError, match="must match"):
        K.gemm(f32, np.ones((4, 2), np.float64))
    with pytest.raises(ValueError, match=r"inner dimensions.*\(3, 4\).*\(5, 2\)"):
        K.gemm(f32, np.ones((5, 2), np.float32))
    with pytest.raises(ValueError, match="2-D"):
        K.gemm(np.ones(4, np.float32), np.ones((4, 2), np.float32))
    b = np.ones((4, 2), np.float32)
    with pytest.raises(ValueError, match=r"out has shape \(2, 3\)"):
        K.gemm(f32, b, out=np.empty((2, 3), np.float32))
    with pytest.raises(TypeError, match="out is float64"):
        K.gemm(f32, b, out=np.empty((3, 2), np.float64))
    with pytest.raises(ValueError, match="unit column stride"):
        K.gemm(f32, b, out=np.empty((3, 4), np.float32)[:, ::2])
    ro = np.empty((3, 2), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        K.gemm(f32, b, out=ro)


# ---- im2col / col2im --------------------------------------------------------------

def natural_out(size, kernel, stride, pad, dilation):
    return tuple((i + 2 * p - d * (k - 1) - 1) // s + 1
                 for i, k, s, p, d in zip(size, kernel, stride, pad, dilation))


def make_geometry(channels, size, kernel, stride=None, pad=None, dilation=None, out=None):
    """A Geometry built directly (conv.py's builders check user arguments; these tests feed C)."""
    ones = (1,) * len(size)
    stride, dilation, pad = stride or ones, dilation or ones, pad or (0,) * len(size)
    out = out or natural_out(size, kernel, stride, pad, dilation)
    return Geometry(channels=channels, in_size=tuple(size), out_size=tuple(out), kernel=tuple(kernel),
                    stride=tuple(stride), pad=tuple(pad), pad_after=tuple(pad),
                    dilation=tuple(dilation))


def im2col(x, geom):
    cols = np.empty((len(x), geom.channels * math.prod(geom.kernel), math.prod(geom.out_size)), x.dtype)
    K.run("im2col", geom, len(x), x, cols)
    return cols


def col2im(cols, geom):
    x = np.empty(geom.input_shape(len(cols)), cols.dtype)
    K.run("col2im", geom, len(cols), cols, x)
    return x


def im2col_reference(x, kernel, out, stride, pad, dilation):
    """Plain loops: cols[n, (c, kd, kh, kw), (od, oh, ow)] = x[n, c, id, ih, iw] or 0."""
    n, c, *size = x.shape
    cols = np.zeros((n, c) + tuple(kernel) + tuple(out), x.dtype)
    for kk in itertools.product(*map(range, kernel)):
        for oo in itertools.product(*map(range, out)):
            ii = [o * s - p + q * d for o, s, p, q, d in zip(oo, stride, pad, kk, dilation)]
            if all(0 <= i < sz for i, sz in zip(ii, size)):
                cols[(slice(None), slice(None)) + kk + oo] = x[(slice(None), slice(None)) + tuple(ii)]
    return cols.reshape(n, c * int(np.prod(kernel)), int(np.prod(out)))


def col2im_reference(cols, channels, size, kernel, out, stride, pad, dilation):
    n = cols.shape[0]
    cols = cols.reshape((n, channels) + tuple(kernel) + tuple(out))
    x = np.zeros((n, channels) + tuple(size), cols.dtype)
    for kk in itertools.product(*map(range, kernel)):
        for oo in itertools.product(*map(range, out)):
            ii = [o * s - p + q * d for o, s, p, q, d in zip(oo, stride, pad, kk, dilation)]
            if all(0 <= i < sz for i, sz in zip(ii, size)):
                x[(slice(None), slice(None)) + tuple(ii)] += cols[(slice(None), slice(None)) + kk + oo]
    return x


CASES = [  # (channels, batch, size, kernel, stride, pad, dilation)
    (1, 1, (7,), (3,), (1,), (0,), (1,)),
    (3, 2, (11,), (3,), (2,), (1,), (2,)),
    (2, 3, (6, 7), (3, 2), (1, 1), (1, 0), (1, 1)),
    (3, 2, (9, 8), (3, 3), (2, 3), (2, 1), (2, 1)),
    (4, 1, (5, 5), (5, 5), (1, 1), (2, 2), (1, 1)),  # kernel as large as the input
    (2, 2, (4, 5, 6), (2, 3, 2), (1, 2, 2), (1, 0, 1), (2, 1, 2)),
    (1, 1, (3, 4, 4), (3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1)),
]


def run_case(dtype, channels, batch, size, kernel, stride, pad, dilation, out=None):
    geom = make_geometry(channels, size, kernel, stride, pad, dilation, out)
    out = geom.out_size
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, channels) + tuple(size)).astype(dtype)
    cols = im2col(x, geom)
    assert np.array_equal(cols, im2col_reference(x, kernel, out, stride, pad, dilation))
    c = rng.standard_normal(cols.shape).astype(dtype)
    back = col2im(c, geom)
    want = col2im_reference(c, channels, size, kernel, out, stride, pad, dilation)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(back, want, rtol=tol, atol=tol)
    return x, geom


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
def test_im2col_and_col2im_match_reference(dtype, case):
    run_case(dtype, *case)


def test_im2col_output_smaller_and_larger_than_natural():
    # out decides how much padding comes after: fewer positions drop the tail, more
    # positions read padding that was never asked for explicitly.
    run_case(np.float64, 2, 2, (9, 8), (3, 3), (2, 2), (1, 1), (1, 1), out=(2, 3))
    run_case(np.float64, 2, 2, (9, 8), (3, 3), (2, 2), (1, 1), (1, 1), out=(6, 6))


def test_im2col_hand_computed():
    x = np.arange(1, 10, dtype=np.float32).reshape(1, 1, 3, 3)
    g = make_geometry(1, (3, 3), (2, 2))
    want = np.array([[1, 2, 4, 5],   # kernel offset (0, 0) at the 4 outputs
                     [2, 3, 5, 6],   # (0, 1)
                     [4, 5, 7, 8],   # (1, 0)
                     [5, 6, 8, 9]],  # (1, 1)
                    np.float32)
    assert np.array_equal(im2col(x, g)[0], want)
    # col2im of all ones counts how many windows cover each pixel
    counts = col2im(np.ones((1, 4, 4), np.float32), g).reshape(3, 3)
    assert np.array_equal(counts, [[1, 2, 1], [2, 4, 2], [1, 2, 1]])
    # zero padding, stride 2: the corners read one real pixel each
    g = make_geometry(1, (3, 3), (2, 2), stride=(2, 2), pad=(1, 1), out=(2, 2))
    assert np.array_equal(im2col(x, g)[0], [[0, 0, 0, 5], [0, 0, 4, 6],
                                            [0, 2, 0, 8], [1, 3, 7, 9]])


def assert_adjoint(x, g):
    cols = im2col(x, g)
    c = np.random.default_rng(1).standard_normal(cols.shape)
    lhs = np.vdot(cols, c)
    rhs = np.vdot(x.reshape(-1), col2im(c, g).reshape(-1))
    assert abs(lhs - rhs) <= 1e-12 * (np.abs(cols).sum() * np.abs(c).max(initial=0) + 1)


@pytest.mark.parametrize("case", CASES)
def test_adjoint_identity(case):
    x, g = run_case(np.float64, *case)
    assert_adjoint(x, g)


@st.composite
def geometries(draw):
    dims = draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(dims))
    pad = tuple(draw(st.integers(0, 2)) for _ in range(dims))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    # an input at least as large as the dilated kernel after padding
    size = tuple(draw(st.integers(max(1, d * (k - 1) + 1 - 2 * p), 6))
                 for k, d, p in zip(kernel, dilation, pad))
    out = natural_out(size, kernel, stride, pad, dilation)
    if draw(st.booleans()):  # sometimes an output size other than the natural one
        out = tuple(max(0, o + draw(st.integers(-1, 1))) for o in out)
    channels = draw(st.integers(1, 3))
    batch = draw(st.integers(0, 2))
    return channels, batch, size, kernel, stride, pad, dilation, out


@settings(max_examples=60, deadline=None)
@given(geometries(), st.sampled_from(DTYPES))
def test_im2col_col2im_hypothesis(geom, dtype):
    channels, batch, size, kernel, stride, pad, dilation, out = geom
    x, g = run_case(dtype, channels, batch, size, kernel, stride, pad, dilation, out)
    if dtype == np.float64:
        assert_adjoint(x, g)


def test_im2col_bit_identical_across_thread_counts(restore_threads):
    x = np.random.default_rng(4).standard_normal((4, 16, 20, 20)).astype(np.float32)
    g = make_geometry(16, (20, 20), (3, 3), stride=(2, 2), pad=(1, 1))
    c = np.random.default_rng(5).standard_normal((4, 16 * 9, 100)).astype(np.float32)
    results = []
    for threads in (1, 2, 3):
        K.set_num_threads(threads)
        results.append((im2col(x, g).tobytes(), col2im(c, g).tobytes()))
    assert results[0] == results[1] == results[2]


# ---- run and the geometry struct --------------------------------------------------

def test_c_geometry_fills_leading_axes():
    g = K.c_geometry(make_geometry(3, (10,), (3,), stride=(2,), pad=(1,), dilation=(2,)))
    assert g.channels == 3
    assert list(getattr(g, "in")) == [1, 1, 10]  # "in" is a Python keyword
    assert list(g.out) == [1, 1, 4] and list(g.kernel) == [1, 1, 3]
    assert list(g.stride) == [1, 1, 2] and list(g.pad) == [0, 0, 1]
    assert list(g.dilation) == [1, 1, 2] and list(g.tile) == [1, 1, 1]
    assert list(K.c_geometry(make_geometry(1, (5, 5), (3, 3), pad=(1, 1))).pad) == [0, 1, 1]


def test_run_rejects_arrays_c_would_misread():
    g = make_geometry(2, (5, 5), (3, 3))
    x = np.zeros((1, 2, 5, 5), np.float32)
    with pytest.raises(TypeError, match="C-contiguous"):
        K.run("im2col", g, 1, np.zeros((1, 2, 5, 10), np.float32)[..., ::2], np.empty((1, 18, 9), np.float32))
    with pytest.raises(TypeError, match="C-contiguous"):
        K.run("im2col", g, 1, x.astype(np.float64), np.empty((1, 18, 9), np.float32))


@pytest.mark.parametrize("field, value", [
    ("stride", (0, 1)), ("dilation", (1, 0)), ("in_size", (5, -1)), ("out_size", (-1, 3)),
    ("kernel", (3, -3)), ("channels", -1),
])
def test_c_rejects_an_inconsistent_geometry(field, value):
    g = dataclasses.replace(make_geometry(1, (5, 5), (3, 3)), **{field: value})
    x, cols = np.zeros(25, np.float32), np.zeros(81, np.float32)  # big enough for any of them
    for kernel, arrays in (("im2col", (x, cols)), ("col2im", (cols, x))):
        with pytest.raises(ValueError, match=kernel):
            K.run(kernel, g, 1, *arrays)


def test_c_rejects_a_negative_batch():
    g = make_geometry(1, (5, 5), (3, 3))
    with pytest.raises(ValueError, match="im2col"):
        K.run("im2col", g, -1, np.zeros(25, np.float32), np.zeros(81, np.float32))


# ---- SIMD selection ---------------------------------------------------------------

def test_set_simd_switches_and_caps():
    before = K.simd_path()
    try:
        assert K.set_simd("generic") == "generic" == K.simd_path()
        assert K.set_simd("best") == K.available_simd()[0]
        assert K.set_simd("avx512") in K.available_simd()
        assert "generic" in K.available_simd()
    finally:
        K.set_simd(before)


@pytest.mark.parametrize("path", PATHS)
def test_every_compiled_simd_path_runs_here(path):
    """The kernel tests run on each path in available_simd(); a path this CPU lacks is reported here,
    once, instead of silently shrinking the test matrix."""
    if path not in K.available_simd():
        pytest.skip(f"this CPU does not run the {path} path, so its kernels are untested on this machine")
    assert K.set_simd(path) == path
    K.set_simd("best")


def test_set_simd_rejects_unknown_names():
    before = K.simd_path()
    with pytest.raises(ValueError, match="sse9"):
        K.set_simd("sse9")
    with pytest.raises(TypeError):
        K.set_simd(2)
    assert K.simd_path() == before
