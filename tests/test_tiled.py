"""Tiled and locally connected convolution: the three C roles (forward, input gradient, weight
gradient) against plain numpy loops in 1-D, 2-D and 3-D, a hand-computed case, tile 1 against
conv, local against tiled with the tile = the output size, the adjoint identities, first and second
order gradient checks, determinism across thread counts, the layers, and argument errors."""
import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minitorch_conv as mc
import minitorch_conv.functional as F
import minitorch_conv.nn as nn
from minitorch_conv import _kernels
from minitorch_conv.gradcheck import gradcheck, gradgradcheck
from minitorch_conv.tiled import local_geometry, tiled_conv, tiled_geometry, tiled_input_grad, tiled_weight_grad

TILED = {1: F.tiled_conv1d, 2: F.tiled_conv2d, 3: F.tiled_conv3d}
LOCAL = {1: F.local_conv1d, 2: F.local_conv2d, 3: F.local_conv3d}
TOL = {np.float32: dict(rtol=1e-4, atol=1e-5), np.float64: dict(rtol=1e-11, atol=1e-12)}


# -- the reference: the chapter's formula, one output position at a time -------------------------
def _out_size(in_size, kernel, stride, before, after):
    return tuple((n + b + a - k) // s + 1 for n, k, s, b, a in zip(in_size, kernel, stride, before, after))


def _window(pos, kernel, stride):
    """The index of the padded input's window read by output position pos."""
    return (slice(None), slice(None)) + tuple(slice(p * s, p * s + k) for p, k, s in zip(pos, kernel, stride))


def _split(w_shape, nd):
    return tuple(w_shape[2:2 + nd]), tuple(w_shape[2 + nd:])


def ref_forward(x, w, stride, before, after):
    """y[n,o,p] = sum_{i,k} w[o,i,k,p % tile] xpad[n,i,p*stride + k]."""
    nd = x.ndim - 2
    kernel, tile = _split(w.shape, nd)
    out = _out_size(x.shape[2:], kernel, stride, before, after)
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0)] + list(zip(before, after)))
    y = np.zeros((x.shape[0], w.shape[0], *out))
    axes = list(range(1, 2 + nd))
    for p in np.ndindex(*out):
        wp = w[(...,) + tuple(i % t for i, t in zip(p, tile))]
        y[(slice(None), slice(None)) + p] = np.tensordot(xp[_window(p, kernel, stride)], wp, (axes, axes))
    return y


def ref_input_grad(w, y, in_size, stride, before, after):
    """Every y[n,o,p] sends w[o,:,:,p % tile] * y[n,o,p] back to the window it read; padding is dropped."""
    nd = y.ndim - 2
    kernel, tile = _split(w.shape, nd)
    xp = np.zeros((y.shape[0], w.shape[1], *(n + b + a for n, b, a in zip(in_size, before, after))))
    for p in np.ndindex(*y.shape[2:]):
        wp = w[(...,) + tuple(i % t for i, t in zip(p, tile))]
        xp[_window(p, kernel, stride)] += np.tensordot(y[(slice(None), slice(None)) + p], wp, (1, 0))
    return xp[(slice(None), slice(None)) + tuple(slice(b, b + n) for b, n in zip(before, in_size))]


def ref_weight_grad(x, y, w_shape, stride, before, after):
    """w[o,i,k,t] = sum over n and the positions p with p % tile = t of y[n,o,p] xpad[n,i,p*stride + k]."""
    nd = x.ndim - 2
    kernel, tile = _split(w_shape, nd)
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0)] + list(zip(before, after)))
    w = np.zeros(w_shape)
    for p in np.ndindex(*y.shape[2:]):
        t = tuple(i % s for i, s in zip(p, tile))
        w[(...,) + t] += np.tensordot(y[(slice(None), slice(None)) + p], xp[_window(p, kernel, stride)], (0, 0))
    return w


def _t(array, dtype=None, requires_grad=False):
    return mc.tensor(np.asarray(array, dtype=dtype or np.asarray(array).dtype), requires_grad=requires_grad)


def _all_roles(x, w, stride, padding, seed=0):
    """Forward through F, the gradients through the ops; returns (y, h(w, gy), g(x, gy), gy)."""
    nd = x.ndim - 2
    geom = tiled_geometry("test", nd, x.shape, w.shape, stride, padding)
    y = TILED[nd](_t(x), _t(w), stride=stride, padding=padding).numpy()
    gy = np.random.default_rng(seed).standard_normal(y.shape).astype(x.dtype)
    hx = tiled_input_grad(_t(w), _t(gy), geom).numpy()
    gw = tiled_weight_grad(_t(x), _t(gy), geom).numpy()
    return y, hx, gw, gy


# (in_size, kernel, tile, stride, padding): per-axis tuples; padding is symmetric here.
CASES = [
    ((11,), (3,), (2,), (1,), (0,)),
    ((9,), (2,), (3,), (2,), (1,)),
    ((7,), (1,), (1,), (1,), (0,)),
    ((8,), (4,), (5,), (3,), (2,)),          # tile larger than the output (3): slices 3, 4 unused
    ((6, 7), (3, 2), (2, 3), (1, 2), (1, 0)),
    ((5, 5), (2, 2), (1, 1), (1, 1), (0, 0)),
    ((8, 6), (3, 3), (2, 2), (2, 1), (1, 1)),
    ((6, 5), (2, 3), (5, 5), (1, 1), (0, 1)),  # tile = output size: locally connected
    ((4, 5, 3), (2, 2, 2), (2, 1, 2), (1, 2, 1), (1, 0, 1)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("in_size, kernel, tile, stride, padding", CASES)
def test_all_three_roles_match_the_numpy_reference(in_size, kernel, tile, stride, padding, dtype):
    rng = np.random.default_rng(len(in_size) * 10 + sum(tile))
    x = rng.standard_normal((2, 3, *in_size)).astype(dtype)
    w = rng.standard_normal((4, 3, *kernel, *tile)).astype(dtype)
    y, hx, gw, gy = _all_roles(x, w, stride, padding)
    assert y.dtype == hx.dtype == gw.dtype == dtype
    np.testing.assert_allclose(y, ref_forward(x, w, stride, padding, padding), **TOL[dtype])
    np.testing.assert_allclose(hx, ref_input_grad(w, gy, in_size, stride, padding, padding), **TOL[dtype])
    np.testing.assert_allclose(gw, ref_weight_grad(x, gy, w.shape, stride, padding, padding), **TOL[dtype])


@st.composite
def tiled_problems(draw):
    nd = draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    padding = tuple(draw(st.integers(0, 2)) for _ in range(nd))
    size = tuple(max(1, k - 2 * p + draw(st.integers(0, 5))) for k, p in zip(kernel, padding))
    tile = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    channels = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return nd, draw(st.integers(1, 2)), channels, size, kernel, tile, stride, padding


@settings(max_examples=60, deadline=None)
@given(tiled_problems())
def test_all_three_roles_match_the_reference_over_drawn_geometries(problem):
    nd, batch, (c_in, c_out), size, kernel, tile, stride, padding = problem
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, c_in, *size))
    w = rng.standard_normal((c_out, c_in, *kernel, *tile))
    y, hx, gw, gy = _all_roles(x, w, stride, padding)
    np.testing.assert_allclose(y, ref_forward(x, w, stride, padding, padding), **TOL[np.float64])
    np.testing.assert_allclose(hx, ref_input_grad(w, gy, size, stride, padding, padding), **TOL[np.float64])
    np.testing.assert_allclose(gw, ref_weight_grad(x, gy, w.shape, stride, padding, padding), **TOL[np.float64])


def test_a_hand_computed_case():
    # Kernel of 2 taps, tile 2: even outputs use [1, 10], odd outputs use [100, 1000].
    x = np.array([[[1.0, 2.0, 3.0, 4.0, 5.0]]])
    w = np.array([[[[1.0, 100.0], [10.0, 1000.0]]]])  # (1, 1, k=2, t=2): w[..., k, t]
    y = F.tiled_conv1d(_t(x), _t(w)).numpy()
    np.testing.assert_array_equal(y, [[[1 + 10 * 2, 100 * 2 + 1000 * 3, 3 + 10 * 4, 100 * 4 + 1000 * 5]]])
    # The input gradient of sum(y): x[j] collects the taps that read it.
    xt = _t(x, requires_grad=True)
    wt = _t(w, requires_grad=True)
    F.tiled_conv1d(xt, wt).sum().backward()
    np.testing.assert_array_equal(xt.grad.numpy(), [[[1, 10 + 100, 1000 + 1, 10 + 100, 1000]]])
    # The weight gradient: w[k, t] sums x[p + k] over the positions p with p % 2 = t.
    np.testing.assert_array_equal(wt.grad.numpy(), [[[[1 + 3, 2 + 4], [2 + 4, 3 + 5]]]])


@pytest.mark.parametrize("padding, size, kernel, stride, before, after", [
    ("same", (6,), (2,), (1,), (0,), (1,)),          # odd leftover pad goes to the end
    ("same", (7, 6), (3, 3), (2, 2), (1, 0), (1, 1)),   # W: out 3, total pad 1, all at the end
    ("full", (5, 4), (3, 2), (1, 1), (2, 1), (2, 1)),
    ("valid", (5, 4), (3, 2), (2, 1), (0, 0), (0, 0)),
])
def test_padding_words(padding, size, kernel, stride, before, after):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 2, *size))
    w = rng.standard_normal((3, 2, *kernel, *(2,) * len(size)))
    y, hx, gw, gy = _all_roles(x, w, stride, padding)
    assert y.shape[2:] == _out_size(size, kernel, stride, before, after)
    np.testing.assert_allclose(y, ref_forward(x, w, stride, before, after), **TOL[np.float64])
    np.testing.assert_allclose(hx, ref_input_grad(w, gy, size, stride, before, after), **TOL[np.float64])
    np.testing.assert_allclose(gw, ref_weight_grad(x, gy, w.shape, stride, before, after), **TOL[np.float64])


def test_non_contiguous_and_empty_inputs():
    rng = np.random.default_rng(4)
    base = _t(rng.standard_normal((2, 3, 7, 6)))
    x = base.transpose(2, 3)                      # (2, 3, 6, 7), not contiguous
    w = rng.standard_normal((2, 3, 2, 2, 2, 3))
    want = ref_forward(np.ascontiguousarray(x.numpy()), w, (1, 1), (1, 0), (1, 0))
    np.testing.assert_allclose(F.tiled_conv2d(x, _t(w), padding=(1, 0)).numpy(), want, **TOL[np.float64])
    # An empty batch: an empty output, and a zero weight gradient.
    wt = _t(w, requires_grad=True)
    y = F.tiled_conv2d(mc.zeros(0, 3, 6, 7, dtype="float64"), wt)
    assert y.shape == (0, 2, 5, 6)
    y.sum().backward()
    np.testing.assert_array_equal(wt.grad.numpy(), np.zeros(w.shape))


# -- tile 1 is convolution; tile = output size is locally connected ------------------------------
@pytest.mark.parametrize("nd, size, kernel, stride, padding", [
    (1, (9,), (3,), 2, 1), (2, (7, 6), (3, 2), (2, 1), (1, 0)), (2, (5, 5), (2, 2), 1, "same"),
    (3, (4, 5, 3), (2, 2, 2), 1, 1)])
def test_tile_one_equals_convolution(nd, size, kernel, stride, padding):
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nd]
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, *size))
    w = rng.standard_normal((4, 3, *kernel))
    xs = [_t(x, requires_grad=True) for _ in range(2)]
    ws = [_t(w, requires_grad=True), _t(w.reshape(w.shape + (1,) * nd), requires_grad=True)]
    y_conv = conv(xs[0], ws[0], stride=stride, padding=padding)
    y_tiled = TILED[nd](xs[1], ws[1], stride=stride, padding=padding)
    np.testing.assert_allclose(y_tiled.numpy(), y_conv.numpy(), **TOL[np.float64])
    gy = _t(rng.standard_normal(y_conv.shape))
    y_conv.backward(gy)
    y_tiled.backward(gy)
    np.testing.assert_allclose(xs[1].grad.numpy(), xs[0].grad.numpy(), **TOL[np.float64])
    np.testing.assert_allclose(ws[1].grad.numpy().reshape(w.shape), ws[0].grad.numpy(), **TOL[np.float64])


@pytest.mark.parametrize("nd, size, kernel, stride, padding", [
    (1, (9,), (3,), 2, 1), (2, (7, 6), (3, 2), (2, 1), (1, 0)), (2, (5, 5), (2, 2), 1, "same")])
def test_local_equals_tiled_with_the_tile_the_output_size(nd, size, kernel, stride, padding):
    rng = np.random.default_rng(6)
    x = _t(rng.standard_normal((2, 3, *size)))
    out = tiled_geometry("test", nd, x.shape, (4, 3, *kernel, *(1,) * nd), stride, padding).out_size
    w = _t(rng.standard_normal((4, 3, *kernel, *out)))
    b = _t(rng.standard_normal((4, *out)))
    local = LOCAL[nd](x, w, b, stride=stride, padding=padding)
    tiled = TILED[nd](x, w, stride=stride, padding=padding)
    np.testing.assert_array_equal(local.numpy(), tiled.numpy() + b.numpy())
    np.testing.assert_array_equal(LOCAL[nd](x, w, stride=stride, padding=padding).numpy(), tiled.numpy())


def test_local_shares_nothing():
    """Changing the weights of one output position changes that output and no other."""
    rng = np.random.default_rng(7)
    x = _t(rng.standard_normal((1, 2, 6, 6)))
    w = rng.standard_normal((3, 2, 3, 3, 4, 4))
    y0 = F.local_conv2d(x, _t(w)).numpy()
    w[..., 1, 2] += 1.0
    changed = np.abs(F.local_conv2d(x, _t(w)).numpy() - y0) > 0
    assert changed[..., 1, 2].all() and changed.sum() == changed[..., 1, 2].size


def test_local_matches_torch_unfold():
    """An independent oracle: a locally connected layer is unfold, then one matrix per position."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    x, w, b = rng.standard_normal((2, 3, 7, 6)), rng.standard_normal((4, 3, 3, 2, 4, 3)), rng.standard_normal((4, 4, 3))
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    cols = torch.nn.functional.unfold(tx, (3, 2), padding=(1, 0), stride=(2, 2))          # (N, C*k, L)
    ty = torch.einsum("nkl,okl->nol", cols, tw.reshape(4, 18, 12)).reshape(2, 4, 4, 3) + tb
    xs, ws, bs = (_t(a, requires_grad=True) for a in (x, w, b))
    y = F.local_conv2d(xs, ws, bs, stride=2, padding=(1, 0))
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), **TOL[np.float64])
    gy = rng.standard_normal(y.shape)
    y.backward(_t(gy))
    ty.backward(torch.tensor(gy))
    for ours, theirs in ((xs, tx), (ws, tw), (bs, tb)):
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), **TOL[np.float64])


# -- adjoints, gradient checks, threads -----------------------------------------------------------
@pytest.mark.parametrize("in_size, kernel, tile, stride, padding", CASES)
def test_adjoint_identities(in_size, kernel, tile, stride, padding):
    """<c(x,w), y> = <x, h(w,y)> = <w, g(x,y)>: h and g are the exact adjoints of c."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 3, *in_size))
    w = rng.standard_normal((4, 3, *kernel, *tile))
    geom = tiled_geometry("test", len(in_size), x.shape, w.shape, stride, padding)
    y = rng.standard_normal(geom.output_shape(2))
    cy = np.vdot(tiled_conv(_t(x), _t(w), geom).numpy(), y)
    xh = np.vdot(x, tiled_input_grad(_t(w), _t(y), geom).numpy())
    wg = np.vdot(w, tiled_weight_grad(_t(x), _t(y), geom).numpy())
    assert cy == pytest.approx(xh, rel=1e-12) and cy == pytest.approx(wg, rel=1e-12)


def _leaves(rng, *shapes):
    return [_t(rng.standard_normal(s), requires_grad=True) for s in shapes]


@pytest.mark.parametrize("fn, shapes", [
    (lambda x, w, b: F.tiled_conv2d(x, w, b, stride=2, padding=1), [(2, 2, 5, 4), (3, 2, 2, 3, 2, 2), (3,)]),
    (lambda x, w, b: F.tiled_conv1d(x, w, b, padding="same"), [(2, 2, 7), (2, 2, 2, 3), (2,)]),
    (lambda x, w, b: F.local_conv2d(x, w, b, stride=(1, 2), padding=(0, 1)),
     [(2, 2, 4, 4), (2, 2, 2, 2, 3, 3), (2, 3, 3)]),
    (lambda x, w, b: F.local_conv1d(x, w, b, stride=2), [(2, 2, 7), (3, 2, 3, 3), (3, 3)]),
], ids=["tiled2d", "tiled1d", "local2d", "local1d"])
def test_gradients_first_and_second_order(fn, shapes):
    inputs = _leaves(np.random.default_rng(10), *shapes)
    assert gradcheck(fn, inputs)
    assert gradgradcheck(fn, inputs)


def test_the_adjoint_ops_have_checked_gradients_too():
    """h and g are ops of their own (transposed tiled convolution, public weight gradient): check
    their gradients, which are the other two members of the closed table."""
    rng = np.random.default_rng(11)
    geom = tiled_geometry("test", 2, (2, 2, 5, 4), (3, 2, 2, 2, 2, 3), (2, 1), 1)
    w, y, x = _leaves(rng, geom.weight_shape, geom.output_shape(2), geom.input_shape(2))
    h = lambda w, y: tiled_input_grad(w, y, geom)  # noqa: E731
    g = lambda x, y: tiled_weight_grad(x, y, geom)  # noqa: E731
    for fn, inputs in ((h, [w, y]), (g, [x, y])):
        assert gradcheck(fn, inputs)
        assert gradgradcheck(fn, inputs)


def test_bit_identical_at_any_thread_count():
    """Each thread owns its outputs and sums in a fixed order: no result depends on the thread count.
    (The problem is large enough for the kernels to use every thread they are given.)"""
    rng = np.random.default_rng(12)
    before = mc.get_num_threads()
    try:
        for dtype in (np.float32, np.float64):
            x = rng.standard_normal((4, 3, 40, 40)).astype(dtype)
            w = rng.standard_normal((6, 3, 3, 3, 2, 3)).astype(dtype)
            mc.set_num_threads(1)
            single = _all_roles(x, w, (1, 2), 1)
            for threads in (2, 3):
                mc.set_num_threads(threads)
                for role, a, b in zip(("forward", "input grad", "weight grad"), _all_roles(x, w, (1, 2), 1), single):
                    np.testing.assert_array_equal(a, b, err_msg=f"{role}, {threads} threads, {dtype.__name__}")
    finally:
        mc.set_num_threads(before)


# -- layers ---------------------------------------------------------------------------------------
def test_tiled_layer_parameters_init_and_forward():
    mc.manual_seed(0)
    layer = nn.TiledConv2d(3, 4, 3, (2, 3), stride=2, padding=1)
    assert [(n, p.shape) for n, p in layer.named_parameters()] == [("weight", (4, 3, 3, 3, 2, 3)), ("bias", (4,))]
    assert list(layer.state_dict()) == ["weight", "bias"]
    bound = 1 / np.sqrt(3 * 9)  # fan_in counts C_in * kernel, not the tile
    w = np.abs(layer.weight.numpy())
    assert w.max() <= bound and w.max() > 0.95 * bound
    assert np.abs(layer.bias.numpy()).max() <= bound
    x = mc.randn(2, 3, 9, 8)
    y = layer(x)
    assert y.shape == (2, 4, 5, 4)
    np.testing.assert_allclose(y.numpy(), F.tiled_conv2d(x, layer.weight, layer.bias, 2, 1).numpy())
    assert nn.TiledConv2d(3, 4, 3, 2, bias=False).bias is None
    assert [n for n, _ in nn.TiledConv2d(3, 4, 3, 2, bias=False).named_parameters()] == ["weight"]
    assert nn.TiledConv2d(1, 1, 1, 1, dtype="float64").weight.dtype == np.float64
    assert nn.TiledConv1d(2, 3, 3, 2)(mc.randn(1, 2, 10)).shape == (1, 3, 8)


def test_tiled_layer_with_a_unit_tile_is_a_conv_layer():
    conv, tiled = nn.Conv2d(2, 3, (3, 2), padding=1), nn.TiledConv2d(2, 3, (3, 2), 1, padding=1)
    tiled.load_state_dict({"weight": conv.weight.numpy()[..., None, None], "bias": conv.bias.numpy()})
    x = mc.randn(2, 2, 6, 5)
    np.testing.assert_allclose(tiled(x).numpy(), conv(x).numpy(), rtol=1e-5, atol=1e-6)


def test_locally_connected_layer_parameters_init_and_forward():
    mc.manual_seed(1)
    layer = nn.LocallyConnected2d(2, 3, (3, 2), (7, 6), stride=2, padding=1)
    assert layer.output_size == (4, 4)
    assert [(n, p.shape) for n, p in layer.named_parameters()] == [("weight", (3, 2, 3, 2, 4, 4)),
                                                                   ("bias", (3, 4, 4))]
    bound = 1 / np.sqrt(2 * 6)
    for p in (layer.weight, layer.bias):
        assert np.abs(p.numpy()).max() <= bound and np.abs(p.numpy()).max() > 0.9 * bound
    x = mc.randn(5, 2, 7, 6, requires_grad=True)
    y = layer(x)
    assert y.shape == (5, 3, 4, 4)
    y.sum().backward()
    assert layer.weight.grad.shape == layer.weight.shape and layer.bias.grad.shape == (3, 4, 4)
    with pytest.raises(ValueError, match=r"LocallyConnected2d: built for inputs of spatial size \(7, 6\)"):
        layer(mc.randn(1, 2, 8, 6))
    one_d = nn.LocallyConnected1d(2, 3, 3, 10, bias=False)
    assert one_d.weight.shape == (3, 2, 3, 8) and one_d.bias is None
    assert one_d(mc.randn(1, 2, 10)).shape == (1, 3, 8)


@pytest.mark.parametrize("make, error, match", [
    (lambda: nn.TiledConv2d(0, 1, 3, 2), ValueError, "in_channels"),
    (lambda: nn.TiledConv2d(1, 1, 3, 0), ValueError, "tile_size"),
    (lambda: nn.TiledConv2d(1, 1, 3, (2, 2, 2)), TypeError, "tile_size"),
    (lambda: nn.TiledConv2d(1, 1, 3, 2, stride=0), ValueError, "stride"),
    (lambda: nn.TiledConv2d(1, 1, 3, 2, bias=None), TypeError, "bias"),
    (lambda: nn.LocallyConnected2d(1, 1, 5, (4, 4)), ValueError, "larger than the padded input"),
    (lambda: nn.LocallyConnected2d(1, 1, 3, 0), ValueError, "input_size"),
])
def test_bad_layer_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


# -- argument errors ------------------------------------------------------------------------------
X = mc.randn(2, 3, 6, 6)
W = mc.randn(4, 3, 3, 3, 2, 2)


@pytest.mark.parametrize("call, error, match", [
    (lambda: F.tiled_conv2d(X, mc.randn(4, 3, 3, 3)), ValueError,
     r"tiled_conv2d: weight must be \(C_out, C_in, kH, kW, tH, tW\), got shape \(4, 3, 3, 3\)"),
    (lambda: F.tiled_conv2d(mc.randn(3, 6, 6), W), ValueError, r"tiled_conv2d: input must be \(N, C, H, W\)"),
    (lambda: F.tiled_conv2d(mc.randn(2, 2, 6, 6), W), ValueError,
     r"tiled_conv2d: input has 2 channels but weight expects 3 \(weight shape \(4, 3, 3, 3, 2, 2\)"),
    (lambda: F.tiled_conv2d(X, mc.zeros(4, 3, 3, 3, 2, 0)), ValueError, r"tile size must be >= 1.*\(2, 0\)"),
    (lambda: F.tiled_conv2d(X, W, mc.randn(4, 1)), ValueError, r"bias must have shape \(4,\), got \(4, 1\)"),
    (lambda: F.tiled_conv2d(X, W, padding=-1), ValueError, "padding must be >= 0"),
    (lambda: F.tiled_conv2d(X, W, padding="half"), ValueError, "padding must be"),
    (lambda: F.tiled_conv2d(X, W, stride=0), ValueError, "stride must be >= 1"),
    (lambda: F.tiled_conv2d(X, W, stride=(1, 1, 1)), TypeError, "stride"),
    (lambda: F.tiled_conv2d(X, mc.randn(4, 3, 7, 3, 2, 2)), ValueError, "larger than the padded input"),
    (lambda: F.tiled_conv2d(X.numpy(), W), TypeError, "tiled_conv2d: input must be a Tensor"),
    (lambda: F.tiled_conv1d(mc.randn(2, 3, 6), mc.randn(4, 3, 3)), ValueError,
     r"tiled_conv1d: weight must be \(C_out, C_in, k, t\)"),
    (lambda: F.local_conv2d(X, mc.randn(4, 3, 3, 3, 5, 5)), ValueError,
     r"local_conv2d: weight's last 2 sizes \(5, 5\) must equal the output size \(4, 4\)"),
    (lambda: F.local_conv2d(X, mc.randn(4, 3, 3, 3, 4, 4), mc.randn(4)), ValueError,
     r"local_conv2d: bias must have shape \(4, 4, 4\)"),
    (lambda: F.local_conv1d(mc.randn(2, 3, 6), mc.randn(4, 3, 3, 3), padding=1), ValueError,
     r"local_conv1d: weight's last 1 sizes \(3,\) must equal the output size \(6,\)"),
    (lambda: F.local_conv2d(X, mc.randn(4, 3, 3, 4, 4)), ValueError,
     r"local_conv2d: weight must be \(C_out, C_in, kH, kW, H_out, W_out\)"),
])
def test_bad_arguments_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_the_c_kernels_refuse_an_inconsistent_geometry():
    """C checks what it trusts (tile >= 1, groups = 1) itself, whatever Python hands it."""
    geom = tiled_geometry("test", 2, X.shape, W.shape, 1, 0)
    x, w, y = X.numpy(), W.numpy(), np.empty(geom.output_shape(2), np.float32)
    for bad in (dataclasses.replace(geom, tile=(2, 0)), dataclasses.replace(geom, groups=3)):
        with pytest.raises(ValueError, match="argument out of range"):
            _kernels.run("tiled_forward", bad, 2, x, w, y)
    _kernels.run("tiled_forward", geom, 2, x, w, y)  # the consistent one runs


def test_local_geometry_is_tiled_with_the_output_as_tile():
    geom = local_geometry("test", 2, (1, 3, 6, 6), (4, 3, 3, 3, 4, 4))
    assert geom.tile == geom.out_size == (4, 4) and geom.weight_shape == (4, 3, 3, 3, 4, 4)
