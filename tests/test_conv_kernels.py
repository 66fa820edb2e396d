"""The convolution kernels c, h and g (csrc/conv_direct.c, csrc/conv_im2col.c) called through
`_kernels.run` with a Geometry built by hand:

- every entry point (3 roles x 2 algorithms x float32/float64, on every SIMD path) against a
  plain numpy reference, for 1-D, 2-D and 3-D, stride, asymmetric padding, dilation, groups,
  depthwise, batches and chunks, and the 1x1 path that skips im2col;
- direct against im2col, and the adjoint identities <c(x,w), y> = <x, h(w,y)> = <w, g(x,y)>;
- bit-identical results at 1, 2 and 3 threads for a given chunk; other chunks agree within rounding;
- hypothesis-drawn geometries, a hand-computed case, torch as an oracle when installed;
- C refusing an inconsistent geometry instead of crashing.
"""
import dataclasses
import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minitorch_conv import _kernels as K
from minitorch_conv.geometry import Geometry

DTYPES = [np.float32, np.float64]
ROLES = ["forward", "input_grad", "weight_grad"]
WORKSPACE_ROLES = ["input_grad", "weight_grad"]  # the im2col c packs its columns straight from x
ALGORITHMS = ["direct", "im2col"]
TOL = {np.float32: 1e-5, np.float64: 1e-12}


# ---- geometry and calls -----------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Case:
    """One convolution problem; per-axis tuples, pad_after may differ from pad."""
    batch: int
    channels: int
    out_channels: int
    size: tuple
    kernel: tuple
    stride: tuple = None
    pad: tuple = None
    pad_after: tuple = None
    dilation: tuple = None
    groups: int = 1

    def geometry(self):
        nd = len(self.size)
        stride, dilation = self.stride or (1,) * nd, self.dilation or (1,) * nd
        pad = self.pad or (0,) * nd
        after = self.pad_after or pad
        out = tuple((i + p + q - d * (k - 1) - 1) // s + 1 for i, p, q, d, k, s
                    in zip(self.size, pad, after, dilation, self.kernel, stride))
        return Geometry(channels=self.channels, in_size=self.size, out_size=out, kernel=self.kernel,
                        stride=stride, pad=pad, pad_after=after, dilation=dilation,
                        out_channels=self.out_channels, groups=self.groups)


CASES = {
    "1d": Case(2, 3, 4, (11,), (3,)),
    "1d-stride-dilation-asym-pad": Case(3, 2, 3, (13,), (3,), (2,), (2,), (0,), (2,)),
    "1d-groups": Case(2, 4, 6, (9,), (2,), (1,), (1,), (1,), groups=2),
    "2d": Case(1, 3, 2, (7, 6), (3, 3), pad=(1, 1)),
    "2d-stride-dilation-asym-pad": Case(3, 2, 3, (9, 8), (3, 2), (2, 3), (1, 0), (2, 1), (1, 2)),
    "2d-groups": Case(2, 6, 4, (6, 7), (3, 3), (1, 2), (1, 1), groups=2),
    "2d-depthwise": Case(3, 4, 4, (8, 7), (3, 3), (1, 1), (1, 1), groups=4),
    "2d-depthwise-multiplier": Case(2, 3, 6, (6, 6), (2, 3), (2, 1), (0, 1), (1, 1), groups=3),
    "2d-same-stride2": Case(2, 2, 3, (7, 8), (3, 3), (2, 2), (1, 0), (1, 1)),  # TF "same": odd pad at the end
    "2d-full": Case(1, 2, 2, (4, 5), (3, 2), pad=(2, 1)),
    "2d-kernel-larger-than-stride-gap": Case(2, 1, 2, (10, 10), (2, 2), (4, 3), (0, 1)),
    "2d-1x1-fast-path": Case(3, 5, 4, (6, 7), (1, 1)),
    "2d-1x1-fast-path-groups": Case(2, 6, 4, (5, 3), (1, 1), groups=2),
    "2d-1x1-stride2": Case(2, 3, 2, (7, 6), (1, 1), (2, 2)),
    "2d-1x1-padded": Case(2, 3, 2, (4, 4), (1, 1), pad=(1, 0)),
    "3d": Case(2, 2, 3, (4, 5, 6), (2, 3, 2), (1, 2, 2), (1, 0, 1), (0, 1, 1), (2, 1, 2)),
    "3d-groups": Case(3, 4, 2, (3, 4, 4), (3, 3, 3), pad=(1, 1, 1), groups=2),
    "3d-1x1x1": Case(2, 3, 2, (3, 4, 5), (1, 1, 1)),
    # the im2col c packs its columns sliver by sliver, in column panels of at most 256 and
    # k-blocks of at most 256 rows: several of each, rows wider than any sliver, padding at
    # both ends of a row, a stride that skips, a pointwise kernel read as one long row
    "2d-wide-panels": Case(2, 3, 5, (40, 37), (3, 3), pad=(1, 1)),
    "2d-wide-stride3-pad": Case(2, 2, 3, (20, 70), (3, 4), (1, 3), (1, 2), (2, 1), (1, 2)),
    "2d-long-k-groups": Case(2, 64, 14, (6, 7), (3, 3), pad=(1, 1), groups=2),
    "2d-1x1-wide": Case(2, 300, 7, (19, 17), (1, 1)),
    # at stride 1 with 8 or more input channels a group, the im2col h runs as a forward
    # convolution of y with the flipped, transposed weights (csrc/conv_im2col.c)
    "1d-h-as-forward": Case(3, 9, 2, (20,), (5,), pad=(2,)),
    "2d-h-as-forward-dilated-asym-pad": Case(2, 8, 5, (9, 10), (3, 2), pad=(2, 1), pad_after=(1, 0),
                                             dilation=(2, 1)),
    "3d-h-as-forward-groups": Case(1, 16, 4, (4, 5, 6), (3, 3, 1), pad=(1, 1, 0), groups=2),
    "2d-1x1-h-as-forward-groups": Case(1, 16, 6, (5, 7), (1, 1), groups=2),
    # the im2col g packs X'^T from the forward's copies (no column matrix) once 6 x 16 micro-tiles
    # are at least half used by C_out/groups x C_in/groups*K (csrc/conv_im2col.c): runs cut at
    # output rows, 256-position blocks, slabs, 1-D, strides (split phases), 3-D groups
    "1d-implicit-g": Case(2, 4, 12, (300,), (3,), pad=(1,)),
    "2d-implicit-g-stride2": Case(2, 4, 8, (35, 30), (3, 3), (2, 2), pad=(1, 1)),
    "3d-implicit-g-groups-stride": Case(2, 8, 12, (5, 6, 7), (3, 3, 3), (1, 2, 2), pad=(1, 1, 1),
                                        groups=2),
    # the direct c, h and g multiply whole padded planes, flat, at stride 1 with 4 or more kernel
    # offsets (csrc/conv_direct.c); h only where pad <= (k - 1)*dilation, else row by row
    "2d-flat-pad-past-kernel": Case(2, 2, 3, (5, 6), (3, 3), pad=(3, 1)),
    "2d-flat-2x2-dilated": Case(2, 3, 2, (9, 7), (2, 2), dilation=(2, 3), pad=(1, 0), pad_after=(0, 2)),
    # im2col and col2im copy output rows 8 or 16 long with the length a constant
    "2d-rows-of-8-stride2": Case(2, 2, 3, (6, 17), (3, 3), (1, 2), pad=(1, 0)),
    "2d-rows-of-16-padded": Case(2, 3, 2, (5, 16), (3, 3), pad=(0, 1)),
}


def shapes(geom, batch):
    """Shapes of x, w, y."""
    w = (geom.out_channels, geom.channels // geom.groups, *geom.kernel)
    return geom.input_shape(batch), w, geom.output_shape(batch)


def workspace_size(geom, chunk):
    """What C says the im2col kernels need for `chunk` images (csrc/conv_im2col.c)."""
    return K.conv_workspace(geom, chunk)


def conv(role, algorithm, geom, batch, a, b, chunk=None):
    """The C kernel for role: forward(x, w) -> y, input_grad(w, y) -> x, weight_grad(x, y) -> w.
    The output and workspace are cut from larger buffers whose tails are checked afterwards,
    and the output starts as NaN, so a kernel that writes out of bounds or leaves an element
    unwritten fails."""
    x_shape, w_shape, y_shape = shapes(geom, batch)
    out_shape = {"forward": y_shape, "input_grad": x_shape, "weight_grad": w_shape}[role]
    out_size = math.prod(out_shape)
    out_buf = np.full(out_size + 7, np.nan, a.dtype)
    out_buf[out_size:] = 42
    out = out_buf[:out_size].reshape(out_shape)
    if algorithm == "direct" or role == "forward":  # the im2col c packs its columns from x: no workspace
        K.run(f"conv_{role}_{algorithm}", geom, batch, a, b, out)
    else:
        chunk = chunk or max(batch, 1)
        size = workspace_size(geom, min(chunk, max(batch, 1)))
        work_buf = np.full(size + 7, 42, a.dtype)
        K.run(f"conv_{role}_im2col", geom, batch, a, b, chunk, work_buf[:size], out)
        assert np.all(work_buf[size:] == 42), "wrote past the workspace"
    assert np.all(out_buf[out_size:] == 42), "wrote past the output"
    return out


def at_thread_counts(run, counts=(1, 2, 3)):
    """run() at each thread count in turn (the test restores the count: restore_threads)."""
    results = []
    for threads in counts:
        K.set_num_threads(threads)
        results.append(run())
    return results


def operands(role, geom, batch, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x_shape, w_shape, y_shape = shapes(geom, batch)
    x, w, y = (rng.standard_normal(s).astype(dtype) for s in (x_shape, w_shape, y_shape))
    return {"forward": (x, w), "input_grad": (w, y), "weight_grad": (x, y)}[role]


# ---- the numpy reference ----------------------------------------------------------
# Written from the definition y[n,o,p] = sum_{i in group(o), k} w[o,i,k] x[n,i, p*stride + k*dilation - pad]
# on an explicitly zero-padded input: `patches` lists, for every kernel offset k, the strided
# slice of the padded input that offset reads; c, h and g are then one einsum each (h scatters
# through the same slices and crops the padding off).

def padded_extent(geom):
    """Padding before and after each axis so that every window lies inside the padded input."""
    need = [(o - 1) * s + (k - 1) * d + 1 for o, s, k, d in
            zip(geom.out_size, geom.stride, geom.kernel, geom.dilation)]
    return [(p, max(0, n - p - i)) for p, n, i in zip(geom.pad, need, geom.in_size)]


def offset_slices(geom):
    """For each kernel offset (kd, kh, kw): the slices of the padded input it reads."""
    for kk in itertools.product(*map(range, geom.kernel)):
        yield tuple(slice(k * d, k * d + (o - 1) * s + 1, s) for k, d, o, s in
                    zip(kk, geom.dilation, geom.out_size, geom.stride))


def patches(x, geom):
    """(N, groups, C_in/groups, K, L) with K = kernel offsets, L = output positions."""
    xp = np.pad(x, [(0, 0), (0, 0)] + padded_extent(geom))
    p = np.stack([xp[(slice(None), slice(None)) + sl] for sl in offset_slices(geom)], axis=2)
    return p.reshape(len(x), geom.groups, geom.channels // geom.groups, -1, math.prod(geom.out_size))


def w_grouped(w, geom):
    """(groups, C_out/groups, C_in/groups, K)"""
    return w.reshape(geom.groups, geom.out_channels // geom.groups, geom.channels // geom.groups, -1)


def y_grouped(y, geom):
    """(N, groups, C_out/groups, L)"""
    return y.reshape(len(y), geom.groups, geom.out_channels // geom.groups, -1)


def ref_forward(x, w, geom):
    y = np.einsum("ngckl,gock->ngol", patches(x, geom), w_grouped(w, geom))
    return y.reshape(geom.output_shape(len(x)))


def ref_input_grad(w, y, geom):
    cols = np.einsum("gock,ngol->ngckl", w_grouped(w, geom), y_grouped(y, geom))
    cols = cols.reshape(len(y), geom.channels, cols.shape[3], *geom.out_size)
    extent = padded_extent(geom)
    xp = np.zeros((len(y), geom.channels) + tuple(i + a + b for i, (a, b) in zip(geom.in_size, extent)))
    for k, sl in enumerate(offset_slices(geom)):
        xp[(slice(None), slice(None)) + sl] += cols[:, :, k]
    crop = tuple(slice(a, a + i) for (a, _), i in zip(extent, geom.in_size))
    return xp[(slice(None), slice(None)) + crop]


def ref_weight_grad(x, y, geom):
    w = np.einsum("ngckl,ngol->gock", patches(x, geom), y_grouped(y, geom))
    return w.reshape(shapes(geom, 0)[1])


REFERENCE = {"forward": ref_forward, "input_grad": ref_input_grad, "weight_grad": ref_weight_grad}


def assert_matches_reference(got, role, geom, a, b, dtype):
    """got within TOL[dtype] of the float64 reference, relative to the same sum taken over
    absolute values (a bound on every term, so cancellation cannot make the test flaky)."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    want = REFERENCE[role](a64, b64, geom)
    scale = REFERENCE[role](np.abs(a64), np.abs(b64), geom)
    assert got.shape == want.shape
    err = np.abs(got.astype(np.float64) - want)
    bound = TOL[dtype] * scale + np.finfo(dtype).tiny
    assert np.all(err <= bound), f"max error {err.max():.3g}, worst excess at {np.unravel_index(np.argmax(err - bound), err.shape)}"


# ---- against the reference ---------------------------------------------------------

def test_reference_hand_computed():
    """The reference itself on a case small enough to do by hand: x = [1, 2, 3, 4],
    w = [1, -1], pad 1 before and none after, stride 2: the two windows read (pad, 1) and (2, 3)."""
    geom = Case(1, 1, 1, (4,), (2,), (2,), (1,), (0,)).geometry()
    assert geom.out_size == (2,)
    x = np.array([[[1.0, 2, 3, 4]]])
    w = np.array([[[1.0, -1]]])
    y = np.array([[[10.0, 100]]])
    assert np.array_equal(ref_forward(x, w, geom), [[[0 - 1, 2 - 3]]])
    assert np.array_equal(ref_input_grad(w, y, geom), [[[-10, 100, -100, 0]]])
    assert np.array_equal(ref_weight_grad(x, y, geom), [[[0 * 10 + 2 * 100, 1 * 10 + 3 * 100]]])
    for algorithm in ALGORITHMS:
        assert np.array_equal(conv("forward", algorithm, geom, 1, x, w), [[[-1, -1]]])
        assert np.array_equal(conv("input_grad", algorithm, geom, 1, w, y), [[[-10, 100, -100, 0]]])
        assert np.array_equal(conv("weight_grad", algorithm, geom, 1, x, y), [[[200, 310]]])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", CASES)
def test_matches_reference(simd, name, role, algorithm, dtype):
    case = CASES[name]
    geom = case.geometry()
    a, b = operands(role, geom, case.batch, dtype)
    # chunk 2: a partial last chunk whenever the batch is odd
    got = conv(role, algorithm, geom, case.batch, a, b, chunk=2)
    assert_matches_reference(got, role, geom, a, b, dtype)


# the im2col c packs each sliver of columns (4 to 32 wide, by SIMD path and dtype) from runs that
# lie within one output row: one run, two (read whole and blended at the cut) or more (rows
# shorter than a sliver, tiny images several to a task); rows of 1 to 33 positions at strides
# 1 to 3 (split phases) reach all three on every path and dtype
SLIVER_CASES = {f"{ow}-wide-stride{s}": Case(3, 2, 3, (5, (ow - 1) * s + 3), (3, 3), (1, s), pad=(1, 0))
                for ow in (1, 2, 3, 5, 7, 9, 15, 17, 31, 33) for s in (1, 2, 3)}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", SLIVER_CASES)
def test_forward_slivers_across_output_rows(simd, restore_threads, name, dtype):
    case = SLIVER_CASES[name]
    geom = case.geometry()
    assert geom.out_size[1] == int(name.split("-")[0])
    x, w = operands("forward", geom, case.batch, dtype)
    results = at_thread_counts(lambda: conv("forward", "im2col", geom, case.batch, x, w), counts=(1, 2))
    assert results[0].tobytes() == results[1].tobytes()
    assert_matches_reference(results[0], "forward", geom, x, w, dtype)


CHUNK_CASES = {
    # small images: each group's GEMM covers the whole chunk, its images side by side
    "one-gemm-per-chunk": Case(5, 3, 4, (6, 7), (3, 2), (1, 2), (1, 0), (0, 1), (1, 2)),
    # an image whose GEMM is large on its own (2.7M multiply-adds): c goes image by image over
    # the side-by-side columns, g still takes the chunk at once (h, here as everywhere its
    # copies fit, adds panels of X' into copies of x instead: no chunks)
    "one-gemm-per-image": Case(5, 16, 32, (24, 24), (3, 3), pad=(1, 1)),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", CHUNK_CASES)
def test_chunks_agree(name, role, dtype):
    """chunk 1, a partial last chunk, exactly the batch, more than the batch: one GEMM per chunk
    sums over the chunk's images, so chunks group the sums differently and may differ in the
    last bits, never by more than rounding (and each matches the reference)."""
    case = CHUNK_CASES[name]
    geom = case.geometry()
    a, b = operands(role, geom, case.batch, dtype)
    results = [conv(role, "im2col", geom, case.batch, a, b, chunk=c) for c in (1, 2, 3, 5, 9)]
    scale = REFERENCE[role](np.abs(a).astype(np.float64), np.abs(b).astype(np.float64), geom)
    for r in results:
        assert_matches_reference(r, role, geom, a, b, dtype)
        assert np.all(np.abs(r.astype(np.float64) - results[0]) <= TOL[dtype] * scale)
    # what the kernels compute per image does not depend on the chunk: forward and input grad
    # come out bit-identical, only the weight gradient's sum over images regroups
    if role != "weight_grad":
        assert all(r.tobytes() == results[0].tobytes() for r in results)


SLAB_CASES = {  # a small weight gradient over long columns: mc_gemm would find one output tile
    "wide-chunk": (Case(4, 4, 8, (52, 52), (3, 3), pad=(1, 1)), 4),
    "partial-chunk": (Case(4, 4, 8, (52, 52), (3, 3), pad=(1, 1)), 3),
    "pointwise": (Case(2, 16, 16, (100, 100), (1, 1)), 2),
    # slabs computed transposed (rows x C_out suits the micro-kernel better), as for MNIST-1D, LeNet
    "transposed-1d": (Case(128, 1, 32, (150,), (5,), pad=(2,)), 128),
    "transposed-2d": (Case(64, 6, 16, (12, 12), (5, 5)), 64),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", SLAB_CASES)
def test_weight_grad_cut_into_slabs(restore_threads, name, dtype):
    """Such a product is cut along its long k into slabs that run side by side, their partial
    sums (in the workspace, which is larger for it) added in slab order: still the reference's
    numbers, and the same bits at 1, 2 and 3 threads."""
    case, chunk = SLAB_CASES[name]
    geom = case.geometry()
    columns = (geom.channels * math.prod(geom.kernel) + geom.out_channels) * chunk * math.prod(geom.out_size)
    assert K.conv_workspace(geom, chunk) > (0 if name == "pointwise" else columns)  # partial sums
    x, y = operands("weight_grad", geom, case.batch, dtype)
    results = at_thread_counts(lambda: conv("weight_grad", "im2col", geom, case.batch, x, y, chunk=chunk))
    assert results[0].tobytes() == results[1].tobytes() == results[2].tobytes()
    assert_matches_reference(results[0], "weight_grad", geom, x, y, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("role", WORKSPACE_ROLES)
@pytest.mark.parametrize("name", ["2d-1x1-fast-path-groups", "2d-1x1-h-as-forward-groups"])
def test_pointwise_does_not_touch_the_workspace(name, role, dtype):
    """1x1, stride 1, no padding: the columns are x itself, so a one-element workspace will do —
    whether h goes image by image (3 channels a group) or as a forward (8 or more)."""
    case = CASES[name]
    geom = case.geometry()
    a, b = operands(role, geom, case.batch, dtype)
    x_shape, w_shape, y_shape = shapes(geom, case.batch)
    out = np.full({"forward": y_shape, "input_grad": x_shape, "weight_grad": w_shape}[role], np.nan, dtype)
    work = np.full(1, 42, dtype)
    K.run(f"conv_{role}_im2col", geom, case.batch, a, b, 1, work, out)
    assert work[0] == 42
    assert_matches_reference(out, role, geom, a, b, dtype)


def test_workspace_is_what_c_says():
    """conv.workspace_elements asks C (mc_conv_im2col_workspace) and takes the most images whose
    workspace fits the budget; C's count grows with the chunk, is zero for a pointwise kernel
    (x is its own column matrix) and refuses a chunk below one."""
    from minitorch_conv.conv import WORKSPACE_BYTES, workspace_elements
    geom = Case(100, 8, 16, (20, 20), (3, 3), pad=(1, 1)).geometry()
    sizes = [K.conv_workspace(geom, c) for c in range(1, 40)]
    assert sizes == sorted(sizes) and sizes[0] == 8 * 9 * 400  # one image: its im2col, nothing more
    chunk, size = workspace_elements(geom, 100)
    assert 1 < chunk < 100 and size == K.conv_workspace(geom, chunk)
    assert 8 * size <= WORKSPACE_BYTES < 8 * K.conv_workspace(geom, chunk + 1)
    assert workspace_elements(geom, 3) == (3, K.conv_workspace(geom, 3))
    big = Case(2, 64, 64, (64, 64), (3, 3), pad=(1, 1)).geometry()  # one image alone is over budget
    assert workspace_elements(big, 2) == (1, K.conv_workspace(big, 1))
    assert K.conv_workspace(CASES["2d-1x1-fast-path-groups"].geometry(), 7) == 0
    with pytest.raises(ValueError, match="workspace"):
        K.conv_workspace(geom, 0)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_empty_batch(algorithm):
    """No images: c and h have nothing to write; g is the empty sum, zero."""
    geom = CASES["2d-groups"].geometry()
    x_shape, w_shape, y_shape = shapes(geom, 0)
    x, y = np.zeros(x_shape), np.zeros(y_shape)
    assert conv("forward", algorithm, geom, 0, x, np.ones(w_shape)).shape == y_shape
    assert conv("input_grad", algorithm, geom, 0, np.ones(w_shape), y).shape == x_shape
    assert np.array_equal(conv("weight_grad", algorithm, geom, 0, x, y), np.zeros(w_shape))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("channels, out_channels", [(0, 3), (2, 0), (0, 0)])
def test_no_channels(algorithm, channels, out_channels):
    """An empty sum is zero: with no input channels y = 0, with no output channels x = 0."""
    geom = Case(2, channels, out_channels, (5, 4), (3, 3), pad=(1, 1)).geometry()
    for role in ROLES:
        a, b = operands(role, geom, 2, np.float64)
        got = conv(role, algorithm, geom, 2, a, b)
        assert np.array_equal(got, np.zeros_like(got))


# ---- algorithms against each other, and the adjoint identities --------------------

@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", CASES)
def test_direct_equals_im2col(name, role):
    case = CASES[name]
    geom = case.geometry()
    a, b = operands(role, geom, case.batch, np.float64, seed=3)
    direct = conv(role, "direct", geom, case.batch, a, b)
    im2col = conv(role, "im2col", geom, case.batch, a, b, chunk=1)
    scale = REFERENCE[role](np.abs(a), np.abs(b), geom)
    assert np.all(np.abs(direct - im2col) <= 1e-12 * scale + 1e-300)


def assert_adjoint_identities(geom, batch, algorithm, seed=0):
    """<c(x, w), y> = <x, h(w, y)> = <w, g(x, y)> in float64."""
    rng = np.random.default_rng(seed)
    x, w, y = (rng.standard_normal(s) for s in shapes(geom, batch))
    cy = np.vdot(conv("forward", algorithm, geom, batch, x, w), y)
    xh = np.vdot(x, conv("input_grad", algorithm, geom, batch, w, y))
    wg = np.vdot(w, conv("weight_grad", algorithm, geom, batch, x, y))
    # every term of the three sums is a product |x||w||y| of the same triples
    scale = np.vdot(ref_forward(np.abs(x), np.abs(w), geom), np.abs(y)) + 1
    assert abs(cy - xh) <= 1e-12 * scale
    assert abs(cy - wg) <= 1e-12 * scale


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("name", CASES)
def test_adjoint_identities(name, algorithm):
    case = CASES[name]
    assert_adjoint_identities(case.geometry(), case.batch, algorithm)


# ---- determinism --------------------------------------------------------------------

# Large enough to go parallel everywhere: the direct units do millions of multiply-adds
# (threads_for's threshold is 64K); a dense image's GEMM has m*n*k = 5.3M, so c and h take one
# per image and mc_gemm parallelises inside (from 2M), as in g's GEMM over a 3-image chunk; the
# depthwise and pointwise GEMMs are smaller, so they run side by side. Chunks of 3 leave a
# partial last chunk of one image. (Slabs and runs of small images have tests of their own.)
PARALLEL_CASES = {
    "dense": Case(4, 32, 32, (24, 24), (3, 3), pad=(1, 1)),
    "depthwise": Case(4, 16, 16, (24, 24), (3, 3), pad=(1, 1), groups=16),
    "strided-asym": Case(3, 12, 20, (31, 29), (3, 3), (2, 2), (1, 0), (1, 2), (1, 2)),
    "pointwise": Case(4, 64, 64, (16, 16), (1, 1)),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", PARALLEL_CASES)
def test_bit_identical_across_thread_counts(restore_threads, name, role, algorithm, dtype):
    case = PARALLEL_CASES[name]
    geom = case.geometry()
    a, b = operands(role, geom, case.batch, dtype)
    results = at_thread_counts(lambda: conv(role, algorithm, geom, case.batch, a, b, chunk=3).tobytes())
    assert results[0] == results[1] == results[2]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("role", ROLES)
def test_small_images_shared_out_in_runs(restore_threads, role, dtype):
    """A chunk of many small images: c goes side by side in runs of whole images, one run a
    thread; g cuts its long sum into slabs; h takes one (image, group) a thread. Same bits at 1,
    2 and 3 threads, and c and h the same bits as image by image (chunk 1), since a GEMM's
    columns do not depend on each other."""
    case = Case(48, 4, 8, (12, 12), (3, 3), pad=(1, 1))
    geom = case.geometry()
    a, b = operands(role, geom, case.batch, dtype)
    results = at_thread_counts(lambda: conv(role, "im2col", geom, case.batch, a, b, chunk=48))
    assert results[0].tobytes() == results[1].tobytes() == results[2].tobytes()
    if role != "weight_grad":
        assert results[0].tobytes() == conv(role, "im2col", geom, case.batch, a, b, chunk=1).tobytes()
    assert_matches_reference(results[0], role, geom, a, b, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pad", [0, 1])
def test_stride_two_rows_of_every_length(dtype, pad):
    """The forward's copy splits each row at stride 2 into its even and odd elements 16 bytes at a
    time, the last block moved back to end with the row (deinterleave): rows shorter than a block,
    exactly one, and several with a part left over, for 4 floats and for 2 doubles a block."""
    for width in range(3, 16):
        case = Case(2, 2, 3, (3, width), (3, 3), (2, 2), (pad, pad))
        geom = case.geometry()
        x, w = operands("forward", geom, case.batch, dtype)
        assert_matches_reference(conv("forward", "im2col", geom, case.batch, x, w), "forward", geom, x, w, dtype)


TINY_CASES = {  # at most 32 output positions an image: several images to a task of c, h and g
    "mnist1d-layer-3": Case(100, 25, 25, (10,), (3,), (2,), (1,)),  # 51 images a task, 2 tasks
    # 19 positions, 13 images a task: the last of 8 has 9 (h: 4 panels of 64, its last one empty)
    "mnist1d-layer-1": Case(100, 1, 25, (40,), (5,), (2,), (1,)),
    "partial-last-task": Case(13, 8, 16, (40,), (5,), (2,), (2,)),  # 20 positions: 12, then 1
    # 4 x 2 x 2 positions, groups, dilation: 16 images a task (16, 16, 8); g implicit (6 x 48)
    "3d-groups-dilated": Case(40, 8, 12, (4, 5, 5), (2, 3, 2), (1, 2, 2), (0, 1, 0), (1, 0, 1), (1, 1, 2), 2),
    # 10 positions, 25 images a block: g's 21 blocks in 4 slabs, side by side on threads
    "many-slabs": Case(512, 8, 16, (20,), (3,), (2,), (1,)),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", TINY_CASES)
def test_tiny_images_several_to_a_task(restore_threads, name, role, dtype):
    """c, h and (where it goes without a column matrix: layer 3, the partial task) g take tiny images
    several at a time, their columns side by side in one task and each image's copy after the last:
    the reference's numbers, the same bits at 1, 2 and 3 threads, and for c the same bits as each
    image alone (a task of one image), since a GEMM's columns do not depend on each other (h's sums
    into a copy follow the panels, and g's sum the blocks, which a batch cuts elsewhere)."""
    case = TINY_CASES[name]
    geom = case.geometry()
    a, b = operands(role, geom, case.batch, dtype)
    results = at_thread_counts(lambda: conv(role, "im2col", geom, case.batch, a, b))
    assert results[0].tobytes() == results[1].tobytes() == results[2].tobytes()
    assert_matches_reference(results[0], role, geom, a, b, dtype)
    if role == "forward":
        alone = np.concatenate([conv(role, "im2col", geom, 1, a[n:n + 1], b) for n in range(case.batch)])
        assert results[0].tobytes() == alone.tobytes()


@pytest.mark.parametrize("role", ROLES)
def test_tiny_images_with_more_threads_than_copies_fit(restore_threads, role):
    """32 positions from 64 channels of 1100: three images' copies (282 KB each) to a task, but 64
    threads' copies (64 images, a task each) would pass 16 MB. The forward then takes one image a
    task from x itself, h and g keep their tasks on fewer threads: the same bits as one thread, and
    the reference's numbers."""
    case = Case(64, 64, 4, (1100,), (3,), (35,), (0,))
    geom = case.geometry()
    assert geom.out_size == (32,)
    a, b = operands(role, geom, case.batch, np.float32, seed=8)
    K.set_num_threads(1)
    one = conv(role, "im2col", geom, case.batch, a, b)
    K.set_num_threads(64)
    many = conv(role, "im2col", geom, case.batch, a, b)
    assert many.tobytes() == one.tobytes()
    assert_matches_reference(many, role, geom, a, b, np.float32)


# ---- hypothesis -------------------------------------------------------------------

@st.composite
def cases(draw):
    nd = draw(st.integers(1, 3))
    axis = lambda lo, hi: tuple(draw(st.integers(lo, hi)) for _ in range(nd))  # noqa: E731
    kernel, stride, dilation = axis(1, 3), axis(1, 3), axis(1, 2)
    pad, pad_after = axis(0, 2), axis(0, 2)
    # an input whose padded extent holds at least one dilated window
    size = tuple(draw(st.integers(max(1, d * (k - 1) + 1 - p - q), 6))
                 for k, d, p, q in zip(kernel, dilation, pad, pad_after))
    groups = draw(st.integers(1, 3))
    channels = groups * draw(st.integers(1, 2))
    out_channels = groups * draw(st.integers(1, 2))
    return Case(draw(st.integers(1, 3)), channels, out_channels, size, kernel, stride, pad,
                pad_after, dilation, groups)


@settings(max_examples=40, deadline=None)
@given(cases(), st.sampled_from(ROLES), st.sampled_from(ALGORITHMS), st.sampled_from(DTYPES),
       st.integers(1, 3))
def test_hypothesis_geometries(case, role, algorithm, dtype, chunk):
    geom = case.geometry()
    a, b = operands(role, geom, case.batch, dtype)
    assert_matches_reference(conv(role, algorithm, geom, case.batch, a, b, chunk), role, geom, a, b, dtype)


@settings(max_examples=20, deadline=None)
@given(cases(), st.sampled_from(ALGORITHMS))
def test_hypothesis_adjoint_identities(case, algorithm):
    assert_adjoint_identities(case.geometry(), case.batch, algorithm)


# ---- torch as an oracle -----------------------------------------------------------

@pytest.mark.parametrize("name", ["1d-stride-dilation-asym-pad", "2d-stride-dilation-asym-pad",
                                  "2d-depthwise-multiplier", "3d", "3d-groups"])
def test_torch_oracle(name):
    torch = pytest.importorskip("torch")
    case = CASES[name]
    geom = case.geometry()
    x, w, y = (np.random.default_rng(5).standard_normal(s) for s in shapes(geom, case.batch))
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    # torch pads symmetrically; the asymmetric part goes through F.pad (last axis first)
    pads = [p for before, after in reversed(list(zip(geom.pad, geom.pad_after))) for p in (before, after)]
    conv_nd = getattr(torch.nn.functional, f"conv{geom.ndim}d")
    ty = conv_nd(torch.nn.functional.pad(tx, pads), tw, stride=geom.stride, dilation=geom.dilation,
                 groups=geom.groups)
    ty.backward(torch.tensor(y))
    for algorithm in ALGORITHMS:
        np.testing.assert_allclose(conv("forward", algorithm, geom, case.batch, x, w), ty.detach().numpy(),
                                   rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(conv("input_grad", algorithm, geom, case.batch, w, y), tx.grad.numpy(),
                                   rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(conv("weight_grad", algorithm, geom, case.batch, x, y), tw.grad.numpy(),
                                   rtol=1e-10, atol=1e-12)


# ---- C refuses what it cannot compute ---------------------------------------------

BAD_GEOMETRIES = {
    "groups not dividing channels": dict(channels=4, groups=3, out_channels=3),
    "groups not dividing out_channels": dict(channels=4, groups=2, out_channels=3),
    "zero groups": dict(groups=0),
    "negative groups": dict(groups=-2),
    "negative out_channels": dict(out_channels=-4),
    "zero stride": dict(stride=(1, 0)),
    "zero dilation": dict(dilation=(0, 1)),
    "negative size": dict(in_size=(-5, 5)),
}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("bad", BAD_GEOMETRIES)
def test_c_rejects_an_inconsistent_geometry(bad, role, algorithm):
    geom = dataclasses.replace(Case(2, 4, 4, (5, 5), (3, 3)).geometry(), **BAD_GEOMETRIES[bad])
    big = [np.zeros(10_000) for _ in range(3)]  # larger than any of them could need
    kernel = f"conv_{role}_{algorithm}"
    with pytest.raises(ValueError, match=kernel):
        if algorithm == "direct" or role == "forward":
            K.run(kernel, geom, 2, *big)
        else:
            K.run(kernel, geom, 2, big[0], big[1], 1, np.zeros(10_000), big[2])


@pytest.mark.parametrize("role", WORKSPACE_ROLES)
@pytest.mark.parametrize("chunk", [0, -1])
def test_c_rejects_a_chunk_below_one(role, chunk):
    geom = Case(2, 4, 4, (5, 5), (3, 3)).geometry()
    a, b = operands(role, geom, 2, np.float64)
    with pytest.raises(ValueError, match="im2col"):
        K.run(f"conv_{role}_im2col", geom, 2, a, b, chunk, np.zeros(10_000), np.zeros(10_000))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_c_rejects_a_negative_batch(algorithm):
    geom = Case(2, 4, 4, (5, 5), (3, 3)).geometry()
    arrays = [np.zeros(1000) for _ in range(3)]
    kernel = f"conv_forward_{algorithm}"
    with pytest.raises(ValueError, match=kernel):  # c takes the same arguments in both algorithms
        K.run(kernel, geom, -1, *arrays)


@pytest.mark.parametrize("threads", [1, 2])
def test_weight_grad_past_the_padded_copy_budget(restore_threads, threads):
    """The im2col g packs X'^T from the forward's copies of x while they fit 16 MB, and goes
    through a column matrix (im2col + GEMM) beyond: both ways against the direct loops."""
    K.set_num_threads(threads)
    for size in ((256, 260), (16, 260)):  # past the budget (see below), and within it
        geom = Case(1, 64, 8, size, (3, 3), pad=(1, 2)).geometry()
        x, y = operands("weight_grad", geom, 1, np.float32, seed=6)
        im2col = conv("weight_grad", "im2col", geom, 1, x, y)
        direct = conv("weight_grad", "direct", geom, 1, x, y)
        np.testing.assert_allclose(im2col, direct, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("threads", [1, 2])
def test_input_grad_past_the_padded_copy_budget(restore_threads, threads):
    """The im2col h (at stride 2 never a c) adds each panel of X' into copies of x laid out as the
    forward's while they fit 16 MB, and goes through a column matrix (GEMM + col2im) beyond: both
    ways against the direct loops, on odd sizes so that the phases differ in length."""
    K.set_num_threads(threads)
    assert 4 * 64 * 257 * 264 > 16 << 20  # one padded float32 copy of the first size is past it
    for size in ((255, 259), (15, 259)):  # past the budget, and within it
        batch = 1 if size[0] > 16 else 2  # the implicit h needs two tasks
        geom = Case(batch, 64, 8, size, (3, 3), (2, 2), pad=(1, 2)).geometry()
        w, y = operands("input_grad", geom, batch, np.float32, seed=7)
        im2col = conv("input_grad", "im2col", geom, batch, w, y)
        direct = conv("input_grad", "direct", geom, batch, w, y)
        np.testing.assert_allclose(im2col, direct, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("stride, shared_rows", [(1, slice(1, 15)), (2, slice(1, 7))])
@pytest.mark.parametrize("threads", [1, 2])
def test_forward_past_the_padded_copy_budget(restore_threads, threads, stride, shared_rows):
    """The im2col c packs from copies of x (one (image, group) per thread, zero padding written
    out, rows split into stride phases) while they fit 16 MB, and reads x with bounds checks
    beyond: a 64-channel 256x260 input with padding is past it. Both ways against the direct
    loops, and the same bits either side of the budget: a crop of the same problem that fits
    must agree with the big one on the output rows whose windows lie inside the crop."""
    K.set_num_threads(threads)
    big = Case(1, 64, 2, (256, 260), (3, 3), (stride, stride), pad=(1, 2))
    assert 4 * 64 * 258 * 264 > 16 << 20  # one padded float32 copy (258 x 264 planes) is past it
    geom = big.geometry()
    x, w = operands("forward", geom, 1, np.float32, seed=5)
    im2col = conv("forward", "im2col", geom, 1, x, w)
    direct = conv("forward", "direct", geom, 1, x, w)
    np.testing.assert_allclose(im2col, direct, rtol=2e-5, atol=2e-4)
    small = Case(1, 64, 2, (16, 260), (3, 3), (stride, stride), pad=(1, 2))  # fits: copies
    part = conv("forward", "im2col", small.geometry(), 1, np.ascontiguousarray(x[:, :, :16]), w)
    assert part[:, :, shared_rows].tobytes() == im2col[:, :, shared_rows].tobytes()
