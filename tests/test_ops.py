"""Every Tensor op: float64 central-difference gradients (first and second order, broadcasting
included), and forward values and gradients against PyTorch when it is installed."""
import numpy as np
import pytest

import minitorch_conv as mc
from minitorch_conv.gradcheck import gradcheck, gradgradcheck


def _inputs(specs, seed=0):
    """float64 leaf tensors; a spec is a shape, or (shape, "pos") for values in [0.5, 2]."""
    rng = np.random.default_rng(seed)
    out = []
    for spec in specs:
        shape, domain = spec if isinstance(spec, tuple) and isinstance(spec[-1], str) else (spec, "any")
        data = rng.uniform(0.5, 2.0, shape) if domain == "pos" else rng.standard_normal(shape)
        if domain == "apart":  # no ties and nothing near 0, where max / relu / abs have kinks
            data = rng.permutation(np.arange(1, data.size + 1) * 0.37 - data.size * 0.17).reshape(shape) + 0.05
        out.append(mc.tensor(data, requires_grad=True, dtype=mc.float64))
    return out


# name: (our function, the same in torch, input specs)
CASES = {
    "add": (lambda a, b: a + b, lambda a, b: a + b, [(3, 4), (3, 4)]),
    "add_broadcast": (lambda a, b: a + b, lambda a, b: a + b, [(2, 3, 4), (3, 1)]),
    "sub_broadcast": (lambda a, b: a - b, lambda a, b: a - b, [(4,), (2, 3, 4)]),
    "mul_broadcast": (lambda a, b: a * b, lambda a, b: a * b, [(2, 1, 4), (3, 1)]),
    "div_broadcast": (lambda a, b: a / b, lambda a, b: a / b, [(2, 3), ((3,), "pos")]),
    "scalar_ops": (lambda a: (2.0 - a) * 3.0 / (1.5 + a * a) + 1, lambda a: (2.0 - a) * 3.0 / (1.5 + a * a) + 1, [(5,)]),
    "rdiv": (lambda a: 2.0 / a, lambda a: 2.0 / a, [((3, 2), "pos")]),
    "neg": (lambda a: -a, lambda a: -a, [(3,)]),
    "pow_scalar": (lambda a: a ** 3, lambda a: a ** 3, [(2, 3)]),
    "pow_fractional": (lambda a: a ** 1.5, lambda a: a ** 1.5, [((2, 3), "pos")]),
    "pow_tensor": (lambda a, b: a ** b, lambda a, b: a ** b, [((2, 3), "pos"), ((3,), "pos")]),
    "rpow": (lambda a: 2.0 ** a, lambda a: 2.0 ** a, [(4,)]),
    "exp": (lambda a: a.exp(), lambda a: a.exp(), [(3, 2)]),
    "log": (lambda a: a.log(), lambda a: a.log(), [((3, 2), "pos")]),
    "sqrt": (lambda a: a.sqrt(), lambda a: a.sqrt(), [((3, 2), "pos")]),
    "abs": (lambda a: a.abs(), lambda a: a.abs(), [((3, 2), "apart")]),
    "relu": (lambda a: a.relu(), lambda a: a.relu(), [((3, 4), "apart")]),
    "sigmoid": (lambda a: a.sigmoid(), lambda a: a.sigmoid(), [(3, 2)]),
    "tanh": (lambda a: a.tanh(), lambda a: a.tanh(), [(3, 2)]),
    "matmul": (lambda a, b: a @ b, lambda a, b: a @ b, [(3, 4), (4, 2)]),
    "matmul_batched_broadcast": (lambda a, b: a @ b, lambda a, b: a @ b, [(2, 3, 4), (4, 5)]),
    "matmul_vec_left": (lambda a, b: a @ b, lambda a, b: a @ b, [(4,), (2, 4, 3)]),
    "matmul_vec_right": (lambda a, b: a @ b, lambda a, b: a @ b, [(3, 4), (4,)]),
    "matmul_dot": (lambda a, b: a @ b, lambda a, b: a @ b, [(4,), (4,)]),
    "sum_all": (lambda a: a.sum(), lambda a: a.sum(), [(2, 3)]),
    "sum_axis": (lambda a: a.sum(1), lambda a: a.sum(1), [(2, 3, 4)]),
    "sum_axes_keepdims": (lambda a: a.sum((0, 2), keepdims=True), lambda a: a.sum((0, 2), keepdim=True), [(2, 3, 4)]),
    "mean": (lambda a: a.mean(-1), lambda a: a.mean(-1), [(2, 3)]),
    "mean_all": (lambda a: a.mean(), lambda a: a.mean(), [(2, 3)]),
    "max_all": (lambda a: a.max(), lambda a: a.max(), [((3, 4), "apart")]),
    "max_axis": (lambda a: a.max(1), lambda a: a.amax(1), [((3, 4, 2), "apart")]),
    "max_keepdims": (lambda a: a.max(0, keepdims=True), lambda a: a.amax(0, keepdim=True), [((3, 4), "apart")]),
    "min_axis": (lambda a: a.min(1), lambda a: a.amin(1), [((3, 4), "apart")]),
    "reshape": (lambda a: a.reshape(4, -1) * a.reshape(4, 3), lambda a: a.reshape(4, -1) * a.reshape(4, 3), [(2, 6)]),
    "permute": (lambda a: a.permute(2, 0, 1), lambda a: a.permute(2, 0, 1), [(2, 3, 4)]),
    "transpose": (lambda a: a.transpose(0, 2), lambda a: a.transpose(0, 2), [(2, 3, 4)]),
    "T": (lambda a: a.T * a.T, lambda a: a.T * a.T, [(2, 3)]),
    "flatten": (lambda a: a.flatten(1), lambda a: a.flatten(1), [(2, 3, 4)]),
    "flip": (lambda a: a.flip((0, 2)) * a, lambda a: a.flip((0, 2)) * a, [(2, 3, 4)]),
    "index_int_slice": (lambda a: a[1, ::2] * a[0, 1:3], lambda a: a[1, ::2] * a[0, 1:3], [(3, 4)]),
    "index_negative_step_none": (lambda a: a[None, ::-1, -1], lambda a: a.flip(0)[None, :, -1], [(3, 4)]),
    "index_advanced_repeats": (lambda a: a[np.array([0, 2, 0]), 1:], lambda a: a[[0, 2, 0], 1:], [(3, 4)]),
    "index_pairs": (lambda a: a[np.arange(3), np.array([1, 0, 1])], lambda a: a[range(3), [1, 0, 1]], [(3, 2)]),
    "broadcast_to": (lambda a: a.broadcast_to((2, 3, 4)), lambda a: a.broadcast_to((2, 3, 4)), [(3, 1)]),
    "sum_to": (lambda a: a.sum_to((3, 1)), lambda a: a.sum(0).sum(-1, keepdim=True), [(2, 3, 4)]),
    "composite": (lambda a, b: ((a @ b).tanh() * a.sum(1, keepdims=True)).exp().mean(0),
                  lambda a, b: ((a @ b).tanh() * a.sum(1, keepdim=True)).exp().mean(0), [(3, 4), (4, 2)]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradient_first_order(name):
    fn, _, specs = CASES[name]
    assert gradcheck(fn, _inputs(specs))


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradient_second_order(name):
    fn, _, specs = CASES[name]
    assert gradgradcheck(fn, _inputs(specs))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_against_torch(name, dtype):
    torch = pytest.importorskip("torch")
    fn, torch_fn, specs = CASES[name]
    ours = [mc.tensor(x.data, requires_grad=True, dtype=dtype) for x in _inputs(specs, seed=3)]
    theirs = [torch.tensor(x.data, requires_grad=True) for x in ours]
    out, expected = fn(*ours), torch_fn(*theirs)
    assert out.dtype == np.dtype(dtype) and out.shape == tuple(expected.shape)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), **tol)
    weights = np.random.default_rng(4).standard_normal(out.shape).astype(dtype)
    (out * mc.tensor(weights, dtype=dtype)).sum().backward()
    (expected * torch.tensor(weights)).sum().backward()
    for ours_x, theirs_x in zip(ours, theirs):
        assert ours_x.grad.dtype == np.dtype(dtype) and ours_x.grad.shape == ours_x.shape
        np.testing.assert_allclose(ours_x.grad.numpy(), theirs_x.grad.numpy(), **tol)


SPECIAL = [np.nan, -np.inf, -1.0, -0.0, 0.0, 0.5, np.inf]
SPECIAL_GRAD = [7.0, np.inf, np.nan, -np.inf, -2.0, 3.0, -4.0]  # a gradient for each of SPECIAL


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_relu_special_values(dtype, simd):
    """ReLU is PyTorch's clamp_min(x, 0), -0 and NaN passing; its gradient is threshold_backward, a
    select, never a multiply by a 0/1 mask: NaN inputs pass their gradient, and an input <= 0 gives
    +0 even against an infinite or NaN gradient."""
    x = mc.tensor(SPECIAL, requires_grad=True, dtype=dtype)
    y = x.relu()
    np.testing.assert_array_equal(y.numpy(), [np.nan, 0, 0, 0, 0, 0.5, np.inf])
    np.testing.assert_array_equal(np.signbit(y.numpy()), [False, False, False, True, False, False, False])
    y.backward(mc.tensor(np.array(SPECIAL_GRAD, dtype), dtype=dtype))
    np.testing.assert_array_equal(x.grad.numpy(), [7.0, 0, 0, 0, 0, 3.0, -4.0])
    assert not np.signbit(x.grad.numpy()[1:5]).any()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_relu_special_values_bitwise_against_torch(dtype, simd):
    torch = pytest.importorskip("torch")
    ours = mc.tensor(SPECIAL * 3, requires_grad=True, dtype=dtype)  # past one vector of lanes
    theirs = torch.tensor(ours.numpy(), requires_grad=True)
    g = np.array(SPECIAL_GRAD * 3, dtype)
    y, expected = ours.relu(), torch.relu(theirs)
    y.backward(mc.tensor(g, dtype=dtype))
    expected.backward(torch.tensor(g))
    for a, b in ((y.numpy(), expected.detach().numpy()), (ours.grad.numpy(), theirs.grad.numpy())):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(np.signbit(a), np.signbit(b))


def test_relu_of_a_zero_dimensional_tensor():
    x = mc.tensor([1.5, -2.0], requires_grad=True, dtype=mc.float64)
    y = (1 - x.sum() * x[0]).relu()  # 0-d: 1 - (-0.5 * 1.5) = 1.75
    assert y.shape == () and y.item() == 1.75
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [-2 * 1.5 + 2.0, -1.5])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("threads", [1, 2])
def test_relu_large_strided_and_integer(threads, dtype, simd):
    """ReLU and its gradient in C on every SIMD path, over more elements than one thread takes (an
    odd count, so the threads' shares and the vector loops have remainders), from a non-contiguous
    view, against numpy's where; an integer tensor takes numpy's path."""
    rng = np.random.default_rng(5)
    data = rng.standard_normal((63, 6, 23, 25)).astype(dtype)
    before = mc.get_num_threads()
    mc.set_num_threads(threads)
    try:
        leaf = mc.tensor(data, requires_grad=True, dtype=dtype)
        y = leaf.transpose(1, 3).relu()
        g = rng.standard_normal(y.shape).astype(dtype)
        y.backward(mc.tensor(g, dtype=dtype))
    finally:
        mc.set_num_threads(before)
    view = data.transpose(0, 3, 2, 1)
    np.testing.assert_array_equal(y.numpy(), np.where(view > 0, view, 0))
    np.testing.assert_array_equal(leaf.grad.numpy().transpose(0, 3, 2, 1), np.where(view > 0, g, 0))
    ints = mc.Tensor(np.array([-3, 0, 2])).relu()  # as max pooling's indices are held
    assert ints.dtype == np.int64 and ints.tolist() == [0, 0, 2]


def test_relu_gate_shapes_must_match():
    from minitorch_conv import _kernels
    with pytest.raises(ValueError, match=r"relu_gate: a has shape \(2,\) but g has shape \(3,\)"):
        _kernels.relu_gate(np.zeros(2, np.float32), np.zeros(3, np.float32))
