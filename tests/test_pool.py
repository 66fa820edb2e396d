"""The pooling family: hand-computed cases and a numpy reference of every C entry point, PyTorch as
oracle over drawn geometries (1-D to 3-D, ceil_mode, dilation, padding, count_include_pad,
divisor_override), gradient checks first and second order, the tie and NaN rules, adjoint
identities, determinism across thread counts, argument errors, layers, and the chapter's claim that
max pooling makes a representation approximately invariant to small translations."""
import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minitorch_conv as mc
import minitorch_conv.functional as F
import minitorch_conv.nn as nn
from minitorch_conv import pool
from minitorch_conv.gradcheck import gradcheck, gradgradcheck

MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
LP = {1: F.lp_pool1d, 2: F.lp_pool2d, 3: F.lp_pool3d}
UNPOOL = {1: F.max_unpool1d, 2: F.max_unpool2d, 3: F.max_unpool3d}
ADAPTIVE_AVG = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}
ADAPTIVE_MAX = {1: F.adaptive_max_pool1d, 2: F.adaptive_max_pool2d, 3: F.adaptive_max_pool3d}
TOL = {"float32": dict(rtol=1e-5, atol=1e-6), "float64": dict(rtol=1e-12, atol=1e-14)}


def _tensor(a, dtype="float64", requires_grad=False):
    return mc.tensor(np.asarray(a), dtype=dtype, requires_grad=requires_grad)


def _random_pool(rng, nd, dilation=True, torch_padding=False):
    """A random valid pooling: kernel, stride, padding (<= half the window; with torch_padding <= half
    the kernel, PyTorch's stricter limit), dilation, ceil_mode, size."""
    kernel = tuple(int(k) for k in rng.integers(1, 4, nd))
    dil = tuple(int(d) for d in rng.integers(1, 3, nd)) if dilation else (1,) * nd
    window = [d * (k - 1) + 1 for k, d in zip(kernel, dil)]
    stride = tuple(int(s) for s in rng.integers(1, 4, nd))
    limits = kernel if torch_padding else window
    padding = tuple(int(rng.integers(0, m // 2 + 1)) for m in limits)
    size = tuple(int(max(w - 2 * p, 1) + rng.integers(0, 5)) for w, p in zip(window, padding))
    return dict(kernel_size=kernel, stride=stride, padding=padding, dilation=dil,
                ceil_mode=bool(rng.integers(0, 2)), size=size, batch=int(rng.integers(1, 3)),
                channels=int(rng.integers(1, 4)))


def _input(rng, cfg, dtype, requires_grad=True):
    shape = (cfg["batch"], cfg["channels"], *cfg["size"])
    return _tensor(rng.standard_normal(shape), dtype, requires_grad)


# -- a numpy reference with PyTorch's semantics --------------------------------------------------
def _windows(n, k, s, p, d, ceil_mode):
    """(start of each window, output size) along one axis, PyTorch's output rule."""
    w = d * (k - 1) + 1
    out = (n + 2 * p - w + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return [o * s - p for o in range(out)]


def reference_max(x, kernel, stride, padding, dilation, ceil_mode):
    """Each window scanned in order: larger or NaN replaces, so first max of a tie, last NaN."""
    nd = x.ndim - 2
    starts = [_windows(n, k, s, p, d, ceil_mode)
              for n, k, s, p, d in zip(x.shape[2:], kernel, stride, padding, dilation)]
    y = np.empty(x.shape[:2] + tuple(map(len, starts)), x.dtype)
    idx = np.empty(y.shape, np.int64)
    for nc in itertools.product(*map(range, x.shape[:2])):
        plane = x[nc].reshape(-1)
        for o in itertools.product(*(range(len(s)) for s in starts)):
            best, at = -np.inf, -1
            for taps in itertools.product(*(range(k) for k in kernel)):
                pos = [starts[a][o[a]] + taps[a] * dilation[a] for a in range(nd)]
                if all(0 <= q < n for q, n in zip(pos, x.shape[2:])):
                    flat = int(np.ravel_multi_index(pos, x.shape[2:]))
                    v = plane[flat]
                    if at < 0 or v > best or np.isnan(v):
                        best, at = v, flat
            y[nc + o], idx[nc + o] = best, at
    return y, idx


def reference_avg(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
    starts = [_windows(n, k, s, p, 1, ceil_mode) for n, k, s, p in zip(x.shape[2:], kernel, stride, padding)]
    y = np.empty(x.shape[:2] + tuple(map(len, starts)), x.dtype)
    for nc in itertools.product(*map(range, x.shape[:2])):
        for o in itertools.product(*(range(len(s)) for s in starts)):
            lo = [starts[a][o[a]] for a in range(len(kernel))]
            hi = [min(lo_ + k, n + p) for lo_, k, n, p in zip(lo, kernel, x.shape[2:], padding)]
            padded_count = math.prod(h - l for h, l in zip(hi, lo))
            lo = [max(v, 0) for v in lo]
            hi = [min(h, n) for h, n in zip(hi, x.shape[2:])]
            box = x[nc + tuple(slice(l, h) for l, h in zip(lo, hi))]
            divisor = divisor_override or (padded_count if count_include_pad else box.size)
            y[nc + o] = box.sum() / divisor
    return y


# -- hand-computed cases ---------------------------------------------------------------------------
def test_max_pool2d_by_hand():
    x = _tensor([[[[1, 2, 5, 0], [3, 4, 1, 1], [0, 0, 2, 2], [9, 0, 2, 3]]]], requires_grad=True)
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    np.testing.assert_array_equal(y.numpy(), [[[[4, 5], [9, 3]]]])
    np.testing.assert_array_equal(idx.numpy(), [[[[5, 2], [12, 15]]]])
    assert idx.numpy().dtype == np.int64
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[[[0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0], [1, 0, 0, 1]]]])


def test_max_pool1d_padding_never_wins_and_dilation_by_hand():
    x = _tensor([[[-5.0, -1.0, -3.0, -4.0]]])
    np.testing.assert_array_equal(F.max_pool1d(x, 2, 2, padding=1).numpy(), [[[-5, -1, -4]]])
    # dilation 2: windows {0, 2}, {1, 3}
    np.testing.assert_array_equal(F.max_pool1d(x, 2, 1, dilation=2).numpy(), [[[-3, -1]]])


def test_avg_pool1d_ceil_mode_and_padding_by_hand():
    x = _tensor([[[0.0, 1, 2, 3, 4]]])
    np.testing.assert_allclose(F.avg_pool1d(x, 2, 2, ceil_mode=True).numpy(), [[[0.5, 2.5, 4.0]]])
    # windows [-1, 2), [1, 4), [3, 6) clipped to the padded input [-1, 6)
    np.testing.assert_allclose(F.avg_pool1d(x, 3, 2, padding=1, ceil_mode=True).numpy(), [[[1 / 3, 2, 7 / 3]]])
    np.testing.assert_allclose(F.avg_pool1d(x, 3, 2, padding=1, count_include_pad=False).numpy(), [[[0.5, 2, 3.5]]])
    np.testing.assert_allclose(F.avg_pool1d(x, 3, 2, padding=1, divisor_override=2).numpy(), [[[0.5, 3, 3.5]]])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_two_by_two_averages_sum_in_scan_order(dtype):
    """Every 2 x 2 window inside sums ((0 + top left) + top right) + bottom left) + bottom right and
    divides, bit for bit as tap by tap; the adjoint puts each output over 4 into a zeroed input.
    Magnitudes spread over 12 orders, so another order of the sums would round differently."""
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((2, 3, 6, 10)) * 10.0 ** rng.integers(-6, 6, (2, 3, 6, 10))).astype(dtype)
    quads = [x[..., i::2, j::2] for i in (0, 1) for j in (0, 1)]
    expected = (((np.zeros((), dtype) + quads[0]) + quads[1]) + quads[2] + quads[3]) / np.asarray(4, dtype)
    np.testing.assert_array_equal(F.avg_pool2d(_tensor(x, dtype), 2).numpy(), expected)
    leaf = _tensor(x, dtype, requires_grad=True)
    g = rng.standard_normal(expected.shape).astype(dtype)
    F.avg_pool2d(leaf, 2).backward(_tensor(g, dtype))
    share = g / np.asarray(4, dtype)
    for i in (0, 1):
        for j in (0, 1):
            np.testing.assert_array_equal(leaf.grad.numpy()[..., i::2, j::2], share)


def test_average_of_negative_zeros_is_positive_zero_as_in_torch():
    """A window's sum starts at +0, so a window of -0.0 averages to +0.0 (PyTorch's result), and
    the adjoint adds each share into a zeroed input: both with every 2 x 2 window inside, padded,
    and in 1-D."""
    x = _tensor(np.full((1, 1, 4, 6), -0.0))
    for y in (F.avg_pool2d(x, 2), F.avg_pool2d(x, 2, padding=1), F.avg_pool1d(x[0], 2)):
        assert not np.signbit(y.numpy()).any()
    grad = mc.tensor(np.full((1, 1, 2, 3), -0.0), requires_grad=True, dtype=x.dtype)
    leaf = mc.tensor(x.numpy(), requires_grad=True, dtype=x.dtype)
    F.avg_pool2d(leaf, 2).backward(grad)
    assert not np.signbit(leaf.grad.numpy()).any()


def test_lp_pool_by_hand():
    x = _tensor([[[3.0, -4.0, 0.0, 0.0, 1.0, 1.0]]])
    np.testing.assert_allclose(F.lp_pool1d(x, 2, 2).numpy(), [[[5, 0, math.sqrt(2)]]])
    np.testing.assert_allclose(F.lp_pool1d(x, 1, 2).numpy(), [[[7, 0, 2]]])      # |x|, not x
    np.testing.assert_allclose(F.lp_pool1d(x, math.inf, 2).numpy(), [[[4, 0, 1]]])
    np.testing.assert_allclose(F.lp_pool1d(x, 2, 3, 3, padding=1).numpy(), [[[5, 1]]])  # zero padding


def test_weighted_avg_pool2d_by_hand():
    x = _tensor([[[[2.0, 6.0, 1.0, 1.0]]]])
    y = F.weighted_avg_pool2d(x, _tensor([[1.0, 3.0]]))  # normalised to [0.25, 0.75]; stride = window
    np.testing.assert_allclose(y.numpy(), [[[[5.0, 1.0]]]])


def test_maxout_by_hand():
    x = _tensor(np.array([1.0, 5, 2, 0, -1, -3]).reshape(1, 6, 1), requires_grad=True)
    y = F.maxout(x, 3)
    np.testing.assert_array_equal(y.numpy().ravel(), [5, 0])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy().ravel(), [0, 1, 0, 1, 0, 0])


def test_adaptive_pools_by_hand():
    x = _tensor([[[0.0, 1, 2, 3, 4]]])  # windows for 3 outputs: [0, 2), [1, 4), [3, 5)
    np.testing.assert_allclose(F.adaptive_avg_pool1d(x, 3).numpy(), [[[0.5, 2, 3.5]]])
    y, idx = F.adaptive_max_pool1d(x, 3, return_indices=True)
    np.testing.assert_array_equal(y.numpy(), [[[1, 3, 4]]])
    np.testing.assert_array_equal(idx.numpy(), [[[1, 3, 4]]])


def test_max_unpool_by_hand():
    x = _tensor([[[1.0, 7.0, 3.0, 2.0]]])
    y, idx = F.max_pool1d(x, 2, return_indices=True)
    np.testing.assert_array_equal(F.max_unpool1d(y, idx, 2).numpy(), [[[0, 7, 3, 0]]])
    np.testing.assert_array_equal(F.max_unpool1d(y, idx, 2, output_size=(5,)).numpy(), [[[0, 7, 3, 0, 0]]])


def test_global_pooling_is_adaptive_pooling_to_one():
    x = _tensor(np.random.default_rng(0).standard_normal((2, 3, 5, 7)))
    np.testing.assert_allclose(F.adaptive_avg_pool2d(x, 1).numpy(), x.numpy().mean((2, 3), keepdims=True))
    np.testing.assert_array_equal(F.adaptive_max_pool2d(x, 1).numpy(), x.numpy().max((2, 3), keepdims=True))


# -- the tie and NaN rules ------------------------------------------------------------------------
def test_tie_gradient_goes_to_the_first_maximum_in_scan_order():
    x = _tensor([[[[1.0, 3.0], [3.0, 3.0]]]], requires_grad=True)
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    assert idx.numpy().item() == 1
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[[[0, 1], [0, 0]]]])
    # overlapping windows: each window's gradient goes to its own first maximum
    x = _tensor([[[2.0, 2.0, 2.0]]], requires_grad=True)
    F.max_pool1d(x, 2, 1).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[[1, 1, 0]]])


def test_a_window_with_no_input_element_gives_minus_infinity_and_no_gradient():
    x = _tensor([[[1.0, 2.0]]], requires_grad=True)  # taps at -1 and 2: both outside
    y, idx = F.max_pool1d(x, 2, 1, padding=1, dilation=3, return_indices=True)
    np.testing.assert_array_equal(y.numpy(), [[[-np.inf]]])
    np.testing.assert_array_equal(idx.numpy(), [[[-1]]])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[[0, 0]]])


def test_window_of_minus_infinity_points_at_an_element():
    x = _tensor([[[-np.inf, -np.inf, -np.inf, -np.inf]]], requires_grad=True)
    y, idx = F.max_pool1d(x, 2, 2, padding=1, return_indices=True)
    np.testing.assert_array_equal(idx.numpy(), [[[0, 1, 3]]])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[[1, 1, 0, 1]]])


def test_nan_propagates_and_takes_the_gradient():
    x = _tensor([[[1.0, np.nan, 3.0, 2.0, 5.0, 4.0]]], requires_grad=True)
    y, idx = F.max_pool1d(x, 3, return_indices=True)
    assert np.isnan(y.numpy()[0, 0, 0]) and y.numpy()[0, 0, 1] == 5
    np.testing.assert_array_equal(idx.numpy(), [[[1, 4]]])
    y.backward(_tensor(np.ones(y.shape)))
    np.testing.assert_array_equal(x.grad.numpy(), [[[0, 1, 0, 0, 1, 0]]])
    assert np.isnan(F.adaptive_max_pool1d(x, 1).numpy()).all()
    assert np.isnan(F.maxout(x.reshape(1, 6, 1), 2).numpy()[0, 0, 0])


def test_tie_and_nan_rules_match_torch():
    torch = pytest.importorskip("torch")
    x = np.array([[[1.0, np.nan, 3.0, np.nan, 2.0, 3.0, 3.0, 1.0]]])
    for args in ((3, 1, 1), (2, 1, 0), (4, 2, 2)):
        y, idx = F.max_pool1d(_tensor(x), *args, return_indices=True)
        ty, tidx = torch.nn.functional.max_pool1d(torch.tensor(x), *args, return_indices=True)
        np.testing.assert_array_equal(y.numpy(), ty.numpy())
        np.testing.assert_array_equal(idx.numpy(), tidx.numpy())


def _two_by_two_windows():
    """One row of 2 x 2 windows, (1, 1, 2, 16): NaN at each tap, two NaNs, a tie, -inf, a plain one."""
    nan, inf = np.nan, np.inf
    windows = [[[nan, 1], [2, 3]], [[1, nan], [2, 3]], [[1, 2], [nan, 3]], [[1, 2], [3, nan]],
               [[nan, 1], [nan, 3]], [[2, 5], [5, 5]], [[-inf, -inf], [-inf, -inf]], [[4, 1], [2, 3]]]
    return np.concatenate(np.array(windows), axis=1)[None, None]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("padding", [(0, 0), (1, 0)])
def test_two_by_two_windows_keep_the_tie_and_nan_rules(dtype, padding):
    """2 x 2 windows with both rows inside take one pass over all four taps (csrc/pool_body.h,
    max_quads): NaN at any tap wins, of two NaNs the last, of tied maxima the first, and a window of
    -inf points at its first element. Padded in height, the same rows fall into windows that reach
    into the padding and go tap by tap. By hand and against the numpy reference."""
    x = _two_by_two_windows()
    y, idx = F.max_pool2d(_tensor(x, dtype), 2, padding=padding, return_indices=True)
    ry, ridx = reference_max(x.astype(dtype), (2, 2), (2, 2), padding, (1, 1), False)
    np.testing.assert_array_equal(y.numpy(), ry)
    np.testing.assert_array_equal(idx.numpy(), ridx)
    if padding == (0, 0):
        np.testing.assert_array_equal(y.numpy().ravel(), [np.nan] * 5 + [5, -np.inf, 4])
        np.testing.assert_array_equal(idx.numpy().ravel(), [0, 3, 20, 23, 24, 11, 12, 14])


@pytest.mark.parametrize("padding", [(0, 0), (1, 0)])
def test_two_by_two_windows_match_torch(padding):
    torch = pytest.importorskip("torch")
    x = _two_by_two_windows()
    y, idx = F.max_pool2d(_tensor(x), 2, padding=padding, return_indices=True)
    ty, tidx = torch.nn.functional.max_pool2d(torch.tensor(x), 2, padding=padding, return_indices=True)
    np.testing.assert_array_equal(y.numpy(), ty.numpy())
    np.testing.assert_array_equal(idx.numpy(), tidx.numpy())


# -- every C entry point against the numpy reference -----------------------------------------------
@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.integers(0, 2 ** 32 - 1), st.sampled_from(["float32", "float64"]))
def test_max_and_avg_pool_match_the_numpy_reference(nd, seed, dtype):
    rng = np.random.default_rng(seed)
    cfg = _random_pool(rng, nd)
    x = _input(rng, cfg, dtype, requires_grad=False)
    args = {k: cfg[k] for k in ("kernel_size", "stride", "padding", "dilation", "ceil_mode")}
    y, idx = MAX[nd](x, return_indices=True, **args)
    ry, ridx = reference_max(x.numpy(), cfg["kernel_size"], cfg["stride"], cfg["padding"], cfg["dilation"],
                             cfg["ceil_mode"])
    np.testing.assert_array_equal(y.numpy(), ry)
    np.testing.assert_array_equal(idx.numpy(), ridx)
    args.pop("dilation")
    cfg = _random_pool(rng, nd, dilation=False)
    x = _input(rng, cfg, dtype, requires_grad=False)
    include, divisor = bool(rng.integers(0, 2)), [None, int(rng.integers(1, 5))][int(rng.integers(0, 2))]
    args = {k: cfg[k] for k in ("kernel_size", "stride", "padding", "ceil_mode")}
    y = AVG[nd](x, count_include_pad=include, divisor_override=divisor, **args)
    ry = reference_avg(x.numpy(), cfg["kernel_size"], cfg["stride"], cfg["padding"], cfg["ceil_mode"], include,
                       divisor)
    np.testing.assert_allclose(y.numpy(), ry, **TOL[dtype])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_adjoint_identities(dtype):
    """<avg(x), y> = <x, avg_adjoint(y)> and <gather(x), y> = <x, scatter(y)>, with the same indices."""
    rng = np.random.default_rng(3)
    for nd in (1, 2, 3):
        cfg = _random_pool(rng, nd, dilation=False)
        geom = pool.pool_geometry("test", (2, 3, *cfg["size"]), nd, cfg["kernel_size"], cfg["stride"],
                                  cfg["padding"], 1, cfg["ceil_mode"])
        x = _tensor(rng.standard_normal(geom.input_shape(2)), dtype)
        y = _tensor(rng.standard_normal(geom.output_shape(2)), dtype)
        for include, divisor in ((True, 0), (False, 0), (True, 3)):
            lhs = (pool.avg_pool(x, geom, include, divisor).numpy() * y.numpy()).sum()
            rhs = (x.numpy() * pool.avg_pool_adjoint(y, geom, include, divisor).numpy()).sum()
            np.testing.assert_allclose(lhs, rhs, rtol=1e-4 if dtype == "float32" else 1e-12)
        _, indices = pool.max_pool(x, geom)
        lhs = (pool.gather(x, indices, geom).numpy() * y.numpy()).sum()
        rhs = (x.numpy() * pool.scatter(y, indices, geom).numpy()).sum()
        np.testing.assert_allclose(lhs, rhs, rtol=1e-4 if dtype == "float32" else 1e-12)


# -- PyTorch as oracle -----------------------------------------------------------------------------
def _compare(ours, theirs, dtype):
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), **TOL[dtype])


def _backward_both(rng, y, ty, dtype):
    seed = rng.standard_normal(y.shape)
    (y * _tensor(seed, dtype)).sum().backward()
    (ty * pytest.importorskip("torch").tensor(seed, dtype=ty.dtype)).sum().backward()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_max_pool_matches_torch(nd, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(10 + nd)
    for _ in range(8):
        cfg = _random_pool(rng, nd, torch_padding=True)
        x = _input(rng, cfg, dtype)
        tx = torch.tensor(x.numpy(), requires_grad=True)
        args = {k: cfg[k] for k in ("kernel_size", "stride", "padding", "dilation", "ceil_mode")}
        y, idx = MAX[nd](x, return_indices=True, **args)
        if (idx.numpy() == -1).any():
            # a dilated window holding no input element (-inf, index -1 here): PyTorch returns an
            # index outside the input, and its max_pool3d backward then aborts the process
            continue
        ty, tidx = getattr(torch.nn.functional, f"max_pool{nd}d")(tx, return_indices=True, **args)
        _compare(y, ty, dtype)
        np.testing.assert_array_equal(idx.numpy(), tidx.numpy())
        _backward_both(rng, y, ty, dtype)
        _compare(x.grad, tx.grad, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_avg_pool_matches_torch(nd, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(20 + nd)
    for trial in range(8):
        cfg = _random_pool(rng, nd, dilation=False)
        cfg["size"] = tuple(max(n, k) for n, k in zip(cfg["size"], cfg["kernel_size"]))  # avg_pool3d wants it
        x = _input(rng, cfg, dtype)
        tx = torch.tensor(x.numpy(), requires_grad=True)
        args = {k: cfg[k] for k in ("kernel_size", "stride", "padding", "ceil_mode")}
        args["count_include_pad"] = bool(trial % 2)
        extra = {"divisor_override": int(rng.integers(1, 6))} if nd > 1 and trial % 3 == 0 else {}
        y = AVG[nd](x, **args, **extra)
        ty = getattr(torch.nn.functional, f"avg_pool{nd}d")(tx, **args, **extra)
        _compare(y, ty, dtype)
        _backward_both(rng, y, ty, dtype)
        _compare(x.grad, tx.grad, dtype)


def _torch_sum_pool(torch, t, nd, kernel_size, stride, padding, ceil_mode):
    """PyTorch's window sums, zero padding: average pooling with divisor 1 (1-D through 2-D, since
    avg_pool1d has no divisor_override)."""
    if nd == 1:
        return _torch_sum_pool(torch, t.unsqueeze(2), 2, (1, *kernel_size), (1, *stride), (0, *padding),
                               ceil_mode).squeeze(2)
    return getattr(torch.nn.functional, f"avg_pool{nd}d")(t, kernel_size, stride, padding, ceil_mode, True, 1)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_lp_pool_matches_torch(nd, dtype):
    """Without padding or ceil_mode PyTorch's formula agrees with ours for even p, and for any p on
    non-negative input; with them, ours is the root of PyTorch's sum pooling of |x|^p."""
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    rng = np.random.default_rng(30 + nd)
    for p in (2, 3, 1.5):
        cfg = _random_pool(rng, nd, dilation=False)
        data = rng.standard_normal((cfg["batch"], cfg["channels"], *cfg["size"]))
        data = data if p == 2 else np.abs(data) + 0.1
        x = _tensor(data, dtype, requires_grad=True)
        tx = torch.tensor(x.numpy(), requires_grad=True)
        kernel = cfg["kernel_size"][0] if nd == 1 else cfg["kernel_size"]  # lp_pool1d takes an int
        y = LP[nd](x, p, kernel, cfg["stride"])
        _compare(y, getattr(tf, f"lp_pool{nd}d")(tx, p, kernel, cfg["stride"]), dtype)
        args = {k: cfg[k] for k in ("kernel_size", "stride", "padding", "ceil_mode")}
        y = LP[nd](x, p, **args)
        ty = _torch_sum_pool(torch, tx.abs() ** p, nd, **args) ** (1 / p)
        _compare(y, ty, dtype)
        _backward_both(rng, y, ty, dtype)
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-4 if dtype == "float32" else 1e-10,
                                   atol=1e-5 if dtype == "float32" else 1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_adaptive_pools_match_torch(nd, dtype):
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    rng = np.random.default_rng(40 + nd)
    for _ in range(4):
        size = tuple(int(s) for s in rng.integers(1, 9, nd))
        out = tuple(int(rng.integers(1, 2 * s + 1)) for s in size)  # smaller and larger than the input
        x = _tensor(rng.standard_normal((2, 3, *size)), dtype, requires_grad=True)
        tx = torch.tensor(x.numpy(), requires_grad=True)
        y, ty = ADAPTIVE_AVG[nd](x, out), getattr(tf, f"adaptive_avg_pool{nd}d")(tx, out)
        _compare(y, ty, dtype)
        _backward_both(rng, y, ty, dtype)
        _compare(x.grad, tx.grad, dtype)
        x.grad = tx.grad = None
        y, idx = ADAPTIVE_MAX[nd](x, out, return_indices=True)
        ty, tidx = getattr(tf, f"adaptive_max_pool{nd}d")(tx, out, return_indices=True)
        _compare(y, ty, dtype)
        np.testing.assert_array_equal(idx.numpy(), tidx.numpy())
        _backward_both(rng, y, ty, dtype)
        _compare(x.grad, tx.grad, dtype)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_max_unpool_matches_torch(nd):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(50 + nd)
    for _ in range(4):
        kernel = tuple(int(k) for k in rng.integers(1, 4, nd))
        size = tuple(int(k * rng.integers(1, 4) + rng.integers(0, k)) for k in kernel)
        x = _tensor(rng.standard_normal((2, 2, *size)))
        y, idx = MAX[nd](x, kernel, return_indices=True)
        y = _tensor(y.numpy(), requires_grad=True)
        ty = torch.tensor(y.numpy(), requires_grad=True)
        u = UNPOOL[nd](y, idx, kernel, output_size=size)
        tu = getattr(torch.nn.functional, f"max_unpool{nd}d")(ty, torch.tensor(idx.numpy()), kernel, output_size=size)
        _compare(u, tu, "float64")
        _backward_both(rng, u, tu, "float64")
        _compare(y.grad, ty.grad, "float64")


def test_weighted_avg_pool2d_matches_torch_depthwise_convolution():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(60)
    x = _tensor(rng.standard_normal((2, 3, 7, 8)), requires_grad=True)
    w = _tensor(rng.random((3, 2)), requires_grad=True)
    tx, tw = (torch.tensor(t.numpy(), requires_grad=True) for t in (x, w))
    y = F.weighted_avg_pool2d(x, w, stride=(2, 1), padding=1)
    ty = torch.nn.functional.conv2d(tx, (tw / tw.sum()).expand(3, 1, 3, 2), stride=(2, 1), padding=1, groups=3)
    _compare(y, ty, "float64")
    _backward_both(rng, y, ty, "float64")
    _compare(x.grad, tx.grad, "float64")
    _compare(w.grad, tw.grad, "float64")


# -- gradient checks, first and second order, float64 ----------------------------------------------
def _distinct(rng, shape):
    """Values at least 0.01 apart (finite differences of 1e-6 never swap a maximum)."""
    return _tensor(rng.permutation(math.prod(shape)).reshape(shape) * 0.01 + rng.uniform(0, 1e-3, shape),
                   requires_grad=True)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_gradcheck_max_pool_and_unpool(nd):
    rng = np.random.default_rng(70 + nd)
    cfg = _random_pool(rng, nd)
    x = _distinct(rng, (1, 2, *cfg["size"]))
    args = {k: cfg[k] for k in ("kernel_size", "stride", "padding", "dilation", "ceil_mode")}
    assert gradcheck(lambda a: MAX[nd](a, **args), [x])
    assert gradgradcheck(lambda a: MAX[nd](a, **args), [x])
    y, idx = MAX[nd](x, 2, 2, return_indices=True) if min(cfg["size"]) >= 2 else MAX[nd](x, 1, return_indices=True)
    k = 2 if min(cfg["size"]) >= 2 else 1
    y = _tensor(y.numpy(), requires_grad=True)
    assert gradcheck(lambda a: UNPOOL[nd](a, idx, k), [y])
    assert gradgradcheck(lambda a: UNPOOL[nd](a, idx, k), [y])


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_gradcheck_avg_pool(nd):
    rng = np.random.default_rng(80 + nd)
    for include, divisor in ((True, None), (False, None), (True, 2)):
        cfg = _random_pool(rng, nd, dilation=False)
        x = _input(rng, dict(cfg, batch=1, channels=2), "float64")
        args = {k: cfg[k] for k in ("kernel_size", "stride", "padding", "ceil_mode")}
        fn = lambda a: AVG[nd](a, count_include_pad=include, divisor_override=divisor, **args)  # noqa: E731
        assert gradcheck(fn, [x])
        assert gradgradcheck(fn, [x])


@pytest.mark.parametrize("p", [2, 3, 1.5, 1])
def test_gradcheck_lp_pool(p):
    rng = np.random.default_rng(90)
    x = _tensor(rng.standard_normal((1, 2, 5, 6)), requires_grad=True)
    assert gradcheck(lambda a: F.lp_pool2d(a, p, 3, 2, padding=1, ceil_mode=True), [x])
    assert gradgradcheck(lambda a: F.lp_pool2d(a, p, (2, 3), 2), [x])


@pytest.mark.parametrize("p", [2, 1.5, 1, 0.5])
def test_lp_pool_gradient_at_an_all_zero_window_is_zero(p):
    x = _tensor(np.zeros((1, 1, 4, 4)), requires_grad=True)
    x.data[0, 0, 3, 3] = 2.0  # one window non-zero
    (g,) = [mc.grad(F.lp_pool2d(x, p, 2).sum(), x, create_graph=True)]
    assert np.isfinite(g.numpy()).all()
    np.testing.assert_array_equal(g.numpy()[0, 0, :2, :2], 0)
    (gg,) = [mc.grad((g * g).sum(), x)]
    assert np.isfinite(gg.numpy()).all()
    np.testing.assert_array_equal(gg.numpy()[0, 0, :2, :2], 0)


def test_gradcheck_weighted_avg_pool_in_x_and_weights():
    rng = np.random.default_rng(100)
    x = _tensor(rng.standard_normal((2, 2, 5, 6)), requires_grad=True)
    w = _tensor(rng.random((2, 3)) + 0.1, requires_grad=True)
    assert gradcheck(lambda a, b: F.weighted_avg_pool2d(a, b, 1, 1), [x, w])
    assert gradgradcheck(lambda a, b: F.weighted_avg_pool2d(a, b, (2, 1)), [x, w])


def test_gradcheck_maxout_and_adaptive_pools():
    rng = np.random.default_rng(110)
    x = _distinct(rng, (2, 6, 3, 4))
    for fn in (lambda a: F.maxout(a, 3), lambda a: F.adaptive_max_pool2d(a, (2, 3)),
               lambda a: F.adaptive_avg_pool2d(a, (2, 3)), lambda a: F.adaptive_avg_pool3d(a, (4, 2, 3))):
        assert gradcheck(fn, [x])
        assert gradgradcheck(fn, [x])


def test_double_backward_of_max_pool_is_a_gather():
    """d/dx <grad_x(<max_pool(x), u>), v> is 0 (max pooling is piecewise linear), while the gradient
    with respect to the incoming gradient u is gather(v) — the scatter's gradient."""
    rng = np.random.default_rng(120)
    x = _distinct(rng, (1, 1, 4, 4))
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    u = _tensor(rng.standard_normal(y.shape), requires_grad=True)
    (gx,) = [mc.grad((y * u).sum(), x, create_graph=True)]
    v = rng.standard_normal(x.shape)
    gu = mc.grad((gx * _tensor(v)).sum(), u)
    np.testing.assert_array_equal(gu.numpy().ravel(), v.reshape(-1)[idx.numpy().ravel()])


# -- determinism -----------------------------------------------------------------------------------
@pytest.fixture
def restore_threads():
    before = mc.get_num_threads()
    yield
    mc.set_num_threads(before)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bit_identical_at_one_and_two_threads(dtype, restore_threads):
    rng = np.random.default_rng(130)
    data = rng.standard_normal((4, 16, 40, 40))  # above the kernels' one-thread threshold
    runs = []
    for threads in (1, 2):
        mc.set_num_threads(threads)
        results = []
        for fn in (lambda a: F.max_pool2d(a, 3, 2, 1, ceil_mode=True), lambda a: F.avg_pool2d(a, 3, 2, 1),
                   lambda a: F.lp_pool2d(a, 2, 2), lambda a: F.adaptive_max_pool2d(a, 7), F.relu):
            x = _tensor(data, dtype, requires_grad=True)
            y = fn(x)
            y.backward(_tensor(np.cos(np.arange(y.numpy().size)).reshape(y.shape), dtype))
            results += [y.numpy().copy(), x.grad.numpy().copy()]
        runs.append(results)
    for a, b in zip(*runs):
        assert np.array_equal(a, b, equal_nan=True)


# -- arguments -------------------------------------------------------------------------------------
def test_bad_arguments_raise_value_error_naming_the_argument():
    x = _tensor(np.zeros((1, 4, 6, 6)))
    cases = [
        (lambda: F.max_pool2d(x, 0), "kernel_size"),
        (lambda: F.avg_pool2d(x, (2, 0)), "kernel_size"),
        (lambda: F.max_pool2d(x, 7), "kernel_size"),              # larger than the input
        (lambda: F.max_pool2d(x, 9, padding=1), "kernel_size"),    # larger than the padded input
        (lambda: F.max_pool2d(x, 2, padding=2), "padding"),        # over half the kernel
        (lambda: F.avg_pool2d(x, 3, padding=2), "padding"),
        (lambda: F.max_pool2d(x, 2, dilation=2, padding=2), "padding"),
        (lambda: F.max_pool2d(x, 2, stride=0), "stride"),
        (lambda: F.avg_pool2d(x, 2, divisor_override=0), "divisor_override"),
        (lambda: F.lp_pool2d(x, 0, 2), "norm_type"),
        (lambda: F.lp_pool2d(x, -1, 2), "norm_type"),
        (lambda: F.maxout(x, 3), "pieces"),
        (lambda: F.maxout(x, 0), "pieces"),
        (lambda: F.weighted_avg_pool2d(x, _tensor([1.0, 2.0])), "weights"),
        (lambda: F.weighted_avg_pool2d(x, _tensor([[1.0, -2.0]])), "weights"),
        (lambda: F.weighted_avg_pool2d(x, _tensor([[0.0, 0.0]])), "weights"),
        (lambda: F.adaptive_avg_pool2d(x, 0), "output_size"),
        (lambda: F.max_pool2d(_tensor(np.zeros((4, 6))), 2), "input"),
        (lambda: F.max_unpool2d(x, mc.Tensor(np.full((1, 4, 6, 6), 200)), 2), "indices"),
        (lambda: F.max_unpool2d(x, mc.Tensor(np.zeros((1, 4, 6, 5), np.int64)), 2), "indices"),
        (lambda: F.max_unpool2d(x, mc.Tensor(np.zeros((1, 4, 6, 6), np.int64)), 2, output_size=(20, 12)),
         "output_size"),
        (lambda: nn.MaxPool2d(0), "kernel_size"),
        (lambda: nn.Maxout(0), "pieces"),
        (lambda: nn.WeightedAvgPool2d(2, weights=[[1.0, 2.0]]), "weights"),
    ]
    for call, name in cases:
        with pytest.raises(ValueError, match=name):
            call()


def test_non_tensors_and_bad_flags_are_type_errors():
    x = _tensor(np.zeros((1, 1, 4, 4)))
    with pytest.raises(TypeError, match="input"):
        F.max_pool2d(np.zeros((1, 1, 4, 4)), 2)
    with pytest.raises(TypeError, match="ceil_mode"):
        F.max_pool2d(x, 2, ceil_mode="yes")
    with pytest.raises(TypeError, match="kernel_size"):
        F.avg_pool2d(x, 2.5)
    with pytest.raises(TypeError, match="indices"):
        F.max_unpool2d(x, _tensor(np.zeros((1, 1, 4, 4)), "float32"), 2)


def test_unbatched_empty_and_non_contiguous_inputs():
    rng = np.random.default_rng(140)
    data = rng.standard_normal((2, 3, 6, 5))
    x = _tensor(data)
    np.testing.assert_array_equal(F.max_pool2d(_tensor(data[0]), 2).numpy(), F.max_pool2d(x, 2).numpy()[0])
    y, idx = F.max_pool2d(_tensor(data[0]), 2, return_indices=True)
    assert idx.numpy().shape == y.shape == (3, 3, 2)
    assert F.max_unpool2d(y, idx, 2, output_size=(6, 5)).shape == (3, 6, 5)
    assert F.avg_pool2d(_tensor(np.zeros((0, 3, 6, 5))), 2).shape == (0, 3, 3, 2)
    assert F.max_pool2d(_tensor(np.zeros((2, 0, 6, 5))), 2).shape == (2, 0, 3, 2)
    transposed = x.transpose(2, 3)  # a non-contiguous view
    np.testing.assert_array_equal(F.avg_pool2d(transposed, 2).numpy(),
                                  F.avg_pool2d(_tensor(np.ascontiguousarray(data.transpose(0, 1, 3, 2))), 2).numpy())


# -- layers ----------------------------------------------------------------------------------------
def test_layers_call_the_functions():
    rng = np.random.default_rng(150)
    x = _tensor(rng.standard_normal((2, 4, 8, 9)))
    pairs = [
        (nn.MaxPool2d(3, 2, 1, ceil_mode=True), F.max_pool2d(x, 3, 2, 1, ceil_mode=True)),
        (nn.AvgPool2d(3, 2, 1, count_include_pad=False), F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)),
        (nn.LPPool2d(2, 3, 2, 1), F.lp_pool2d(x, 2, 3, 2, 1)),
        (nn.AdaptiveAvgPool2d((3, 4)), F.adaptive_avg_pool2d(x, (3, 4))),
        (nn.AdaptiveMaxPool2d(2), F.adaptive_max_pool2d(x, 2)),
        (nn.Maxout(2), F.maxout(x, 2)),
        (nn.WeightedAvgPool2d(2), F.avg_pool2d(x, 2)),
    ]
    for layer, expected in pairs:
        np.testing.assert_allclose(layer(x).numpy(), expected.numpy(), rtol=1e-12)
    x1, x3 = _tensor(rng.standard_normal((2, 4, 9))), _tensor(rng.standard_normal((1, 2, 4, 5, 6)))
    np.testing.assert_array_equal(nn.MaxPool1d(2)(x1).numpy(), F.max_pool1d(x1, 2).numpy())
    np.testing.assert_array_equal(nn.AvgPool3d(2)(x3).numpy(), F.avg_pool3d(x3, 2).numpy())
    np.testing.assert_array_equal(nn.LPPool3d(2, 2)(x3).numpy(), F.lp_pool3d(x3, 2, 2).numpy())
    np.testing.assert_array_equal(nn.AdaptiveAvgPool1d(4)(x1).numpy(), F.adaptive_avg_pool1d(x1, 4).numpy())
    np.testing.assert_array_equal(nn.AdaptiveMaxPool1d(4)(x1).numpy(), F.adaptive_max_pool1d(x1, 4).numpy())
    y, idx = nn.MaxPool3d(2, return_indices=True)(x3)
    np.testing.assert_array_equal(nn.MaxUnpool3d(2)(y, idx, output_size=x3.shape).numpy(),
                                  F.max_unpool3d(y, idx, 2, output_size=(4, 5, 6)).numpy())
    assert list(nn.MaxPool2d(2).parameters()) == []
    assert "kernel_size=2, stride=2" in repr(nn.MaxPool2d(2))


def test_weighted_avg_pool_layer_learns_positive_weights():
    rng = np.random.default_rng(160)
    layer = nn.WeightedAvgPool2d((2, 2), learnable=True, dtype="float64")
    assert [name for name, _ in layer.named_parameters()] == ["log_weight"]
    x = _tensor(rng.standard_normal((4, 3, 6, 6)))
    target = F.weighted_avg_pool2d(x, _tensor([[4.0, 0.5], [0.5, 1.0]]))
    opt = mc.optim.Adam(layer.parameters(), lr=0.1)
    losses = []
    for _ in range(150):
        opt.zero_grad()
        loss = F.mse_loss(layer(x), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 1e-4 * losses[0]
    window = layer.weight.numpy()
    assert (window > 0).all()
    np.testing.assert_allclose(window / window.sum(), np.array([[4.0, 0.5], [0.5, 1.0]]) / 6, atol=1e-3)
    fixed = nn.WeightedAvgPool2d((1, 2), weights=[[1.0, 3.0]])
    assert list(fixed.parameters()) == []


# -- the chapter's claim: max pooling is approximately invariant to small translations -------------
def _unchanged_fraction(a, b, border=3):
    inner = (slice(None), slice(None), slice(border, -border), slice(border, -border))
    return float((a[inner] == b[inner]).mean())


def test_max_pooling_is_approximately_invariant_to_a_one_pixel_shift():
    """Shift the input one pixel right: nearly every detector value changes, but most max-pooled
    values (width 3, stride 1, as in the chapter's figure) do not."""
    rng = np.random.default_rng(170)
    x = rng.standard_normal((8, 1, 40, 40))
    shifted = np.roll(x, 1, axis=3)
    w = _tensor(rng.standard_normal((4, 1, 3, 3)))
    detector = [F.relu(F.conv2d(_tensor(a), w, padding=1)) for a in (x, shifted)]
    pooled = [F.max_pool2d(d, 3, 1, padding=1).numpy() for d in detector]
    pooled_input = [F.max_pool2d(_tensor(a), 3, 1, padding=1).numpy() for a in (x, shifted)]
    detector_same = _unchanged_fraction(*(d.numpy() for d in detector))
    pooled_same = _unchanged_fraction(*pooled)
    assert _unchanged_fraction(x, shifted) < 0.01         # the raw input: every value moves
    assert _unchanged_fraction(*pooled_input) > 0.4
    assert detector_same < 0.35                            # only units that are 0 before and after
    assert pooled_same > 0.45
    assert pooled_same > 1.8 * detector_same
