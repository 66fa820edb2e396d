"""The public convolution family: PyTorch as oracle, the chapter's examples, gradient checks first
and second order over drawn geometries, padding words, algorithms, layers and argument errors.
(The C entry points against a numpy reference are in test_conv_kernels.py.)"""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minitorch_conv as mc
import minitorch_conv.functional as F
import minitorch_conv.nn as nn
from minitorch_conv.gradcheck import gradcheck, gradgradcheck

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
TRANSPOSED = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
WEIGHT_GRAD = {1: F.conv1d_weight_grad, 2: F.conv2d_weight_grad, 3: F.conv3d_weight_grad}
INPUT_GRAD = {1: F.conv1d_input_grad, 2: F.conv2d_input_grad, 3: F.conv3d_input_grad}
TOL = {"float32": dict(rtol=1e-4, atol=1e-5), "float64": dict(rtol=1e-10, atol=1e-12)}


def _random_config(rng, nd, transposed=False):
    """A random but valid convolution: sizes, stride, padding, dilation and groups per axis."""
    groups = int(rng.choice([1, 1, 2, 3]))
    c_in, c_out = groups * int(rng.integers(1, 4)), groups * int(rng.integers(1, 4))
    kernel = tuple(int(k) for k in rng.integers(1, 4, nd))
    stride = tuple(int(s) for s in rng.integers(1, 4, nd))
    dilation = tuple(int(d) for d in rng.integers(1, 3, nd))
    window = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    padding = tuple(int(rng.integers(0, w)) for w in window) if transposed else tuple(
        int(rng.integers(0, 3)) for _ in range(nd))
    size = tuple(int(w + rng.integers(0, 6)) for w in window)
    return dict(batch=int(rng.integers(1, 4)), c_in=c_in, c_out=c_out, kernel=kernel, stride=stride,
                dilation=dilation, padding=padding, groups=groups, size=size)


def _tensors(rng, dtype, *shapes):
    return [mc.tensor(rng.standard_normal(s), requires_grad=True, dtype=dtype) for s in shapes]


def _compare(ours, theirs, dtype):
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), **TOL[dtype])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("algorithm", ["im2col", "direct", "auto"])
def test_conv_forward_and_gradients_match_torch(nd, dtype, algorithm):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(nd * 100 + len(algorithm))
    for _ in range(6):
        cfg = _random_config(rng, nd)
        x, w, b = _tensors(rng, dtype, (cfg["batch"], cfg["c_in"], *cfg["size"]),
                           (cfg["c_out"], cfg["c_in"] // cfg["groups"], *cfg["kernel"]), (cfg["c_out"],))
        tx, tw, tb = (torch.tensor(t.numpy(), requires_grad=True) for t in (x, w, b))
        args = dict(stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"], groups=cfg["groups"])
        y = CONV[nd](x, w, b, algorithm=algorithm, **args)
        ty = getattr(torch.nn.functional, f"conv{nd}d")(tx, tw, tb, **args)
        _compare(y, ty, dtype)
        seed = rng.standard_normal(y.shape)
        (y * mc.tensor(seed, dtype=dtype)).sum().backward()
        (ty * torch.tensor(seed, dtype=ty.dtype)).sum().backward()
        for ours, theirs in ((x, tx), (w, tw), (b, tb)):
            _compare(ours.grad, theirs.grad, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_conv_transpose_matches_torch(nd, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7 + nd)
    for _ in range(6):
        cfg = _random_config(rng, nd, transposed=True)
        out_pad = tuple(int(rng.integers(0, max(s, d))) for s, d in zip(cfg["stride"], cfg["dilation"]))
        x, w, b = _tensors(rng, dtype, (cfg["batch"], cfg["c_in"], *cfg["size"]),
                           (cfg["c_in"], cfg["c_out"] // cfg["groups"], *cfg["kernel"]), (cfg["c_out"],))
        tx, tw, tb = (torch.tensor(t.numpy(), requires_grad=True) for t in (x, w, b))
        args = dict(stride=cfg["stride"], padding=cfg["padding"], output_padding=out_pad,
                    groups=cfg["groups"], dilation=cfg["dilation"])
        y = TRANSPOSED[nd](x, w, b, **args)
        ty = getattr(torch.nn.functional, f"conv_transpose{nd}d")(tx, tw, tb, **args)
        _compare(y, ty, dtype)
        y.sum().backward()
        ty.sum().backward()
        for ours, theirs in ((x, tx), (w, tw), (b, tb)):
            _compare(ours.grad, theirs.grad, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_unfold_and_fold_match_torch(dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    for _ in range(8):
        cfg = _random_config(rng, 2)
        args = dict(kernel_size=cfg["kernel"], dilation=cfg["dilation"], padding=cfg["padding"], stride=cfg["stride"])
        (x,) = _tensors(rng, dtype, (cfg["batch"], cfg["c_in"], *cfg["size"]))
        tx = torch.tensor(x.numpy(), requires_grad=True)
        cols, tcols = F.unfold(x, **args), torch.nn.functional.unfold(tx, **args)
        _compare(cols, tcols, dtype)
        (c,) = _tensors(rng, dtype, cols.shape)
        tc = torch.tensor(c.numpy(), requires_grad=True)
        folded, tfolded = F.fold(c, cfg["size"], **args), torch.nn.functional.fold(tc, cfg["size"], **args)
        _compare(folded, tfolded, dtype)
        (cols * cols).sum().backward()
        (tcols * tcols).sum().backward()
        (folded * folded).sum().backward()
        (tfolded * tfolded).sum().backward()
        _compare(x.grad, tx.grad, dtype)
        _compare(c.grad, tc.grad, dtype)


@st.composite
def geometries(draw):
    nd = draw(st.integers(1, 3))
    groups = draw(st.sampled_from([1, 2]))
    kernel = tuple(draw(st.integers(1, 2 if nd == 3 else 3)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    padding = draw(st.one_of(st.sampled_from(["valid", "same", "full"]), st.integers(0, 1)))
    window = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    size = tuple(w + draw(st.integers(0, 2)) for w in window)
    return dict(nd=nd, batch=draw(st.integers(1, 2)), c_in=groups, c_out=groups * draw(st.integers(1, 2)),
                kernel=kernel, dilation=dilation, stride=stride, padding=padding, groups=groups, size=size,
                algorithm=draw(st.sampled_from(["im2col", "direct"])))


@settings(max_examples=25, deadline=None)
@given(geometries())
def test_gradients_first_and_second_order_over_drawn_geometries(cfg):
    """conv's gradients are h and g, and theirs are c, h and g again: checked by finite differences."""
    rng = np.random.default_rng(0)
    x, w, b = _tensors(rng, mc.float64, (cfg["batch"], cfg["c_in"], *cfg["size"]),
                       (cfg["c_out"], cfg["c_in"] // cfg["groups"], *cfg["kernel"]), (cfg["c_out"],))
    args = dict(stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"], groups=cfg["groups"],
                algorithm=cfg["algorithm"])
    conv = CONV[cfg["nd"]]
    assert gradcheck(lambda x, w, b: conv(x, w, b, **args), [x, w, b])
    assert gradgradcheck(lambda x, w: conv(x, w, **args), [x, w])


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_public_g_and_h_and_their_second_derivatives(nd):
    rng = np.random.default_rng(nd)
    args = dict(stride=2, padding=1, dilation=1, groups=1)
    x_shape, w_shape = (2, 2, *[5] * nd), (3, 2, *[3] * nd)
    x, w = _tensors(rng, mc.float64, x_shape, w_shape)
    (y,) = _tensors(rng, mc.float64, CONV[nd](x, w, **args).shape)
    g = WEIGHT_GRAD[nd](x, y, w_shape, **args)
    h = INPUT_GRAD[nd](w, y, x_shape, **args)
    assert g.shape == w_shape and h.shape == x_shape
    # the adjoint identities <c(x, w), y> = <x, h(w, y)> = <w, g(x, y)>
    lhs = (CONV[nd](x, w, **args) * y).sum().item()
    assert math.isclose(lhs, (x * h).sum().item(), rel_tol=1e-12)
    assert math.isclose(lhs, (w * g).sum().item(), rel_tol=1e-12)
    assert gradcheck(lambda x, y: WEIGHT_GRAD[nd](x, y, w_shape, **args), [x, y])
    assert gradcheck(lambda w, y: INPUT_GRAD[nd](w, y, x_shape, **args), [w, y])
    assert gradgradcheck(lambda w, y: INPUT_GRAD[nd](w, y, x_shape, **args), [w, y])


def test_algorithms_agree_and_results_do_not_depend_on_threads():
    rng = np.random.default_rng(5)
    x, w = _tensors(rng, mc.float32, (4, 8, 20, 20), (16, 4, 3, 3))
    args = dict(stride=(1, 2), padding="same", dilation=(2, 1), groups=2)
    results = {a: F.conv2d(x, w, **args, algorithm=a).numpy() for a in ("im2col", "direct", "auto")}
    np.testing.assert_allclose(results["im2col"], results["direct"], rtol=1e-5, atol=1e-5)
    threads = mc.get_num_threads()
    try:
        runs = []
        for n in (1, 2, 3):
            mc.set_num_threads(n)
            x.grad = w.grad = None
            y = F.conv2d(x, w, **args)
            (y * y).sum().backward()
            runs.append((y.numpy().copy(), x.grad.numpy().copy(), w.grad.numpy().copy()))
    finally:
        mc.set_num_threads(threads)
    for run in runs[1:]:
        for a, b in zip(run, runs[0]):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("size, stride, k", [(7, 2, 3), (8, 3, 2), (5, 1, 4), (1, 4, 3), (10, 4, 1)])
def test_same_padding_at_any_stride_is_tensorflow_exact(size, stride, k):
    """out = ceil(in / stride), the odd leftover pad at the end: checked against explicit zero padding."""
    rng = np.random.default_rng(size)
    x, w = _tensors(rng, mc.float64, (1, 1, size, size + 1), (1, 1, k, k))
    y = F.conv2d(x, w, stride=stride, padding="same")
    assert y.shape[2:] == (math.ceil(size / stride), math.ceil((size + 1) / stride))
    padded = []
    for n in (size, size + 1):
        total = max((math.ceil(n / stride) - 1) * stride + k - n, 0)
        padded.append((total // 2, total - total // 2))
    xp = np.pad(x.numpy(), ((0, 0), (0, 0), *padded))
    expected = F.conv2d(mc.tensor(xp), w, stride=stride)
    np.testing.assert_allclose(y.numpy(), expected.numpy(), rtol=1e-12)


def test_full_padding_is_true_convolution_with_a_flipped_kernel():
    signal = pytest.importorskip("scipy.signal")
    rng = np.random.default_rng(1)
    image, kernel = rng.standard_normal((9, 11)), rng.standard_normal((3, 4))
    x, w = mc.tensor(image[None, None]), mc.tensor(kernel[None, None])
    y = F.conv2d(x, w.flip((2, 3)), padding="full")
    np.testing.assert_allclose(y.numpy()[0, 0], signal.convolve2d(image, kernel, "full"), rtol=1e-12, atol=1e-12)
    valid = F.conv2d(x, w, padding="valid")
    np.testing.assert_allclose(valid.numpy()[0, 0], signal.correlate2d(image, kernel, "valid"), rtol=1e-12)


def test_the_chapters_edge_detection_example():
    """A 320x280 image and the kernel [-1, 1]: a 319x280 output equal to neighbouring differences."""
    img = mc.rand(1, 1, 280, 320, dtype=mc.float64)
    edges = F.conv2d(img, mc.tensor([[[[-1.0, 1.0]]]], dtype=mc.float64))
    assert edges.shape == (1, 1, 280, 319)
    np.testing.assert_array_equal(edges.numpy(), img.numpy()[..., 1:] - img.numpy()[..., :-1])
    cost = F.conv_cost((1, 1, 280, 320), (1, 1, 1, 2))
    assert (cost.parameters, cost.multiplications, cost.muls_and_adds) == (2, 178_640, 267_960)


def test_workspace_stays_within_its_budget_whatever_the_batch():
    from minitorch_conv.conv import WORKSPACE_BYTES
    small = F.conv_cost((1, 64, 56, 56), (64, 64, 3, 3), padding=1, algorithm="im2col")
    huge = F.conv_cost((4096, 64, 56, 56), (64, 64, 3, 3), padding=1, algorithm="im2col")
    assert small.workspace_bytes == 64 * 9 * 56 * 56 * 4
    assert huge.workspace_bytes <= WORKSPACE_BYTES
    assert F.conv_cost((8, 16, 10, 10), (4, 16, 1, 1), algorithm="im2col").workspace_bytes <= 4  # no copy for 1x1
    assert F.conv_cost((8, 16, 10, 10), (4, 16, 3, 3), algorithm="direct").workspace_bytes == 0


def test_layers_carry_torch_names_shapes_and_numbers():
    torch = pytest.importorskip("torch")
    pairs = [(nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2), torch.nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2)),
             (nn.Conv1d(3, 5, 4, dilation=2), torch.nn.Conv1d(3, 5, 4, dilation=2)),
             (nn.Conv3d(2, 2, (1, 2, 3), bias=False), torch.nn.Conv3d(2, 2, (1, 2, 3), bias=False)),
             (nn.ConvTranspose2d(4, 6, 3, 2, 1, 1, 2), torch.nn.ConvTranspose2d(4, 6, 3, 2, 1, 1, 2)),
             (nn.ConvTranspose1d(3, 2, 5, stride=3), torch.nn.ConvTranspose1d(3, 2, 5, stride=3))]
    rng = np.random.default_rng(0)
    for ours, theirs in pairs:
        theirs_sd = {k: v.detach().numpy() for k, v in theirs.state_dict().items()}
        assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs_sd.items()}
        ours.load_state_dict(theirs_sd)
        nd = ours.nd
        x = rng.standard_normal((2, ours.in_channels, *[7] * nd)).astype(np.float32)
        np.testing.assert_allclose(ours(mc.tensor(x)).numpy(), theirs(torch.tensor(x)).detach().numpy(),
                                   rtol=1e-4, atol=1e-5)


def test_default_init_is_pytorchs():
    layer = nn.Conv2d(8, 16, 3, groups=2)
    bound = 1 / math.sqrt(4 * 9)
    assert np.abs(layer.weight.numpy()).max() <= bound and np.abs(layer.bias.numpy()).max() <= bound
    assert np.abs(layer.weight.numpy()).max() > 0.8 * bound


@pytest.mark.parametrize("call, match", [
    (lambda: F.conv2d(mc.zeros(1, 3, 5, 5), mc.zeros(2, 4, 3, 3)), r"input has 3 channels but weight expects 4 \(weight shape \(2, 4, 3, 3\), groups=1\)"),
    (lambda: F.conv2d(mc.zeros(1, 1, 2, 2), mc.zeros(1, 1, 3, 3)), r"kernel \(3, 3\).*larger than the padded input \(2, 2\)"),
    (lambda: F.conv2d(mc.zeros(1, 1, 5, 5), mc.zeros(1, 1, 3, 3), stride=0), "stride must be >= 1"),
    (lambda: F.conv2d(mc.zeros(1, 1, 5, 5), mc.zeros(1, 1, 3, 3), dilation=(1, 0)), "dilation must be >= 1"),
    (lambda: F.conv2d(mc.zeros(1, 1, 5, 5), mc.zeros(1, 1, 3, 3), padding=-1), "padding must be >= 0"),
    (lambda: F.conv2d(mc.zeros(1, 4, 5, 5), mc.zeros(3, 2, 3, 3), groups=2), "groups=2 must divide"),
    (lambda: F.conv2d(mc.zeros(1, 4, 5, 5), mc.zeros(3, 4, 3)), r"weight must be \(C_out, C_in/groups, kH, kW\)"),
    (lambda: F.conv2d(mc.zeros(1, 4, 5), mc.zeros(3, 4, 3, 3)), r"input must be \(N, C, H, W\), got shape \(1, 4, 5\)"),
    (lambda: F.conv2d(mc.zeros(1, 1, 5, 5), mc.zeros(2, 1, 3, 3), mc.zeros(3)), r"bias must have shape \(2,\)"),
    (lambda: F.conv2d(mc.zeros(1, 1, 5, 5), mc.zeros(1, 1, 3, 3), padding="half"), "padding must be an int, a tuple or one of"),
    (lambda: F.conv2d(mc.zeros(1, 1, 5, 5), mc.zeros(1, 1, 3, 3), algorithm="fft"), "algorithm must be one of"),
    (lambda: F.conv2d(mc.zeros(1, 1, 5, 5), mc.zeros(1, 1, 3, 3), padding=(1, 2, 3)), "padding must be an int or a tuple of 2 ints"),
    (lambda: F.conv_transpose2d(mc.zeros(1, 1, 5, 5), mc.zeros(1, 1, 3, 3), stride=2, output_padding=2), "output_padding"),
    (lambda: F.conv2d(mc.zeros(1, 1, 5, 5), np.zeros((1, 1, 3, 3))), "weight must be a Tensor"),
    (lambda: F.conv2d_input_grad(mc.zeros(1, 1, 3, 3), mc.zeros(1, 1, 4, 4), (1, 1, 5, 5)), r"grad_out has shape \(1, 1, 4, 4\).*\(1, 1, 3, 3\)"),
    (lambda: F.unfold(mc.zeros(1, 2, 4, 4), 5), "larger than the padded input"),
    (lambda: F.fold(mc.zeros(1, 8, 10), (4, 4), 2), "10 columns"),
    (lambda: F.conv_cost((2 ** 20, 64, 2 ** 12, 2 ** 12), (64, 64, 3, 3)), "2\\*\\*40"),
])
def test_bad_arguments_raise_clear_errors(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_kernels_write_only_inside_the_buffers_python_sized_for_them():
    """Sentinels around every output and workspace: C and conv.py must agree on every size."""
    from minitorch_conv import _kernels, conv

    def guarded(n):
        buf = np.full(n + 64, 7.0)
        return buf, buf[32:32 + n]
    rng = np.random.default_rng(11)
    for _ in range(150):
        nd = int(rng.integers(1, 4))
        cfg = _random_config(rng, nd)
        padding = rng.choice(["valid", "same", "full", "explicit"])
        padding = cfg["padding"] if padding == "explicit" else str(padding)
        geom = conv.conv_geometry("test", (cfg["batch"], cfg["c_in"], *cfg["size"]),
                                  (cfg["c_out"], cfg["c_in"] // cfg["groups"], *cfg["kernel"]),
                                  cfg["stride"], padding, cfg["dilation"], cfg["groups"])
        n = cfg["batch"]
        x, w, y = (rng.standard_normal(s) for s in (geom.input_shape(n), geom.weight_shape, geom.output_shape(n)))
        for role, a, b, shape in (("conv_forward", x, w, y.shape), ("conv_input_grad", w, y, x.shape),
                                  ("conv_weight_grad", x, y, w.shape)):
            out_buf, out = guarded(math.prod(shape))
            _kernels.run(f"{role}_direct", geom, n, a, b, out.reshape(shape))
            chunk, size = conv.workspace_elements(geom, n)
            work_buf, work = guarded(size)
            if role in conv.WORKSPACE_ROLES:
                _kernels.run(f"{role}_im2col", geom, n, a, b, chunk, work, out.reshape(shape))
            else:
                _kernels.run(f"{role}_im2col", geom, n, a, b, out.reshape(shape))
            for buf in (out_buf, work_buf):
                assert (buf[:32] == 7).all() and (buf[-32:] == 7).all(), (role, geom)


def test_the_geometry_cache_still_refuses_what_it_refused():
    """conv_geometry remembers a layer's geometry; a bool or a list that equals a cached int or
    tuple must still be refused, and an error is never remembered as a geometry."""
    x, w = mc.tensor(np.ones((1, 2, 6, 6))), mc.tensor(np.ones((3, 2, 3, 3)))
    F.conv2d(x, w, stride=1, padding=(1, 1), groups=1)
    with pytest.raises(TypeError, match="stride"):
        F.conv2d(x, w, stride=True, padding=(1, 1))
    with pytest.raises(TypeError, match="groups"):
        F.conv2d(x, w, stride=1, padding=(1, 1), groups=True)
    for _ in range(2):
        with pytest.raises(ValueError, match="padding"):
            F.conv2d(x, w, padding="half")
    assert F.conv2d(x, w, stride=[1, 1], padding=[1, 1]).shape == (1, 3, 6, 6)
