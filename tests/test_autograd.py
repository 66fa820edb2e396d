"""The engine: accumulation, no_grad, detach, mc.grad and higher derivatives, long graphs, bad calls."""
import numpy as np
import pytest

import minitorch_conv as mc


def test_shared_subexpression_and_accumulation():
    x = mc.tensor([1.5, -2.0], requires_grad=True)
    y = x * x + x  # x reaches y along three paths
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy() + 1)
    (x * 3.0).sum().backward()  # .grad accumulates until zeroed
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy() + 4)
    x.zero_grad()
    assert x.grad is None


def test_backward_with_explicit_grad_for_non_scalar():
    x = mc.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    (x * x).backward(mc.tensor([[1.0, 0.0], [0.5, 2.0]]))
    np.testing.assert_allclose(x.grad.numpy(), [[2.0, 0.0], [3.0, 16.0]])


def test_no_grad_and_detach_cut_the_graph():
    x = mc.tensor([2.0], requires_grad=True)
    with mc.no_grad():
        y = x * x
    assert not y.requires_grad and mc.is_grad_enabled()
    z = x.detach() * x
    z.backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0])  # only the non-detached factor counts


def test_a_10000_op_chain_backpropagates_without_recursion():
    x = mc.tensor([1.0], requires_grad=True, dtype=mc.float64)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0001 ** 10_000], rtol=1e-9)


def test_grad_returns_without_touching_dot_grad():
    x = mc.tensor([1.0, 2.0], requires_grad=True)
    w = mc.tensor([3.0, -1.0], requires_grad=True)
    gx, gw = mc.grad((x * w).sum(), [x, w])
    np.testing.assert_allclose(gx.numpy(), w.numpy())
    np.testing.assert_allclose(gw.numpy(), x.numpy())
    assert x.grad is None and w.grad is None and not gx.requires_grad


def test_grad_with_respect_to_an_intermediate_node():
    x = mc.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2.0
    gh = mc.grad((h * h).sum(), h)
    np.testing.assert_allclose(gh.numpy(), 2 * h.numpy())


def test_third_derivative_of_a_cube():
    x = mc.tensor([0.5, -1.5], requires_grad=True, dtype=mc.float64)
    g1 = mc.grad((x ** 3).sum(), x, create_graph=True)
    g2 = mc.grad(g1.sum(), x, create_graph=True)
    g3 = mc.grad(g2.sum(), x)
    np.testing.assert_allclose(g1.numpy(), 3 * x.numpy() ** 2)
    np.testing.assert_allclose(g2.numpy(), 6 * x.numpy())
    np.testing.assert_allclose(g3.numpy(), [6.0, 6.0])


def test_backward_create_graph_gives_differentiable_grad():
    x = mc.tensor([2.0], requires_grad=True, dtype=mc.float64)
    (x.exp() * x).sum().backward(create_graph=True)
    first = x.grad
    x.grad = None
    first.backward()
    np.testing.assert_allclose(x.grad.numpy(), (x.numpy() + 2) * np.exp(x.numpy()))


def test_mixed_dtypes_give_each_leaf_a_gradient_of_its_own_dtype():
    a = mc.tensor([1.0, 2.0], requires_grad=True)  # float32
    b = mc.tensor(np.array([3.0, 4.0]), requires_grad=True)  # float64
    out = a * b
    assert out.dtype == np.float64
    out.sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64
    np.testing.assert_allclose(a.grad.numpy(), [3.0, 4.0])


def test_unused_input():
    x, y = mc.tensor([1.0], requires_grad=True), mc.tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError, match="not used"):
        mc.grad((x * 2).sum(), [x, y])
    gx, gy = mc.grad((x * 2).sum(), [x, y], allow_unused=True)
    assert gy is None and gx.item() == 2.0


def test_bad_backward_calls_raise_clear_errors():
    x = mc.tensor([[1.0, 2.0]], requires_grad=True)
    with pytest.raises(ValueError, match=r"one-element.*\(1, 2\)"):
        (x * 2).backward()
    with pytest.raises(ValueError, match=r"shape \(2,\).*\(1, 2\)"):
        (x * 2).backward(mc.tensor([1.0, 1.0]))
    with pytest.raises(ValueError, match="does not require grad"):
        mc.tensor([1.0]).backward()
    with pytest.raises(ValueError, match="grad_outputs"):
        mc.grad([x.sum()], [x], grad_outputs=[None, None])
    with pytest.raises(TypeError, match="inputs must be Tensors"):
        mc.grad(x.sum(), [np.ones(2)])
    with pytest.raises(ValueError, match="does not require grad"):
        mc.grad(x.sum(), [mc.tensor([1.0])])


def test_gradcheck_catches_a_wrong_rule():
    from minitorch_conv.autograd import record
    from minitorch_conv.gradcheck import gradcheck

    def bad_square(a):  # the rule misses the factor 2
        return record(a.data ** 2, (a,), lambda g, out: g * a)
    x = mc.tensor(np.array([0.3, -1.2]), requires_grad=True)
    with pytest.raises(AssertionError, match="gradient of input 0"):
        gradcheck(bad_square, [x])


def test_rules_run_only_for_parents_that_need_a_gradient(monkeypatch):
    """One rule per parent, and backward runs only those whose parent requires grad: the
    convolution's input gradient h is never computed for a network's input (as torch skips it)."""
    from minitorch_conv.autograd import record
    calls = []

    def pair(a, b):
        return record(a.data * b.data, (a, b), lambda g, out: calls.append("a") or g * b,
                      lambda g, out: calls.append("b") or g * a)
    a, b = mc.tensor([2.0], requires_grad=True), mc.tensor([3.0])
    pair(a, b).sum().backward()
    assert calls == ["a"] and a.grad.numpy().tolist() == [3.0] and b.grad is None

    import minitorch_conv.conv as conv_module
    x = mc.tensor(np.random.default_rng(0).standard_normal((2, 1, 8)))
    w = mc.tensor(np.random.default_rng(1).standard_normal((3, 1, 3)), requires_grad=True)
    launched, real_launch = [], conv_module.launch
    monkeypatch.setattr(conv_module, "launch", lambda role, *args: launched.append(role) or real_launch(role, *args))
    mc.functional.conv1d(x, w).sum().backward()
    assert launched == ["conv_forward", "conv_weight_grad"]
