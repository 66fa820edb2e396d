"""Activations, losses and dropout: gradient checks, PyTorch as oracle, and argument errors."""
import warnings

import numpy as np
import pytest

import minitorch_conv as mc
import minitorch_conv.functional as F
from minitorch_conv.gradcheck import gradcheck, gradgradcheck

LABELS = np.array([2, 0, 1, 2])

CASES = {
    "linear": (lambda x, w, b: F.linear(x, w, b), lambda torch, x, w, b: torch.nn.functional.linear(x, w, b), [(4, 3), (2, 3), (2,)]),
    "linear_nobias_3d": (lambda x, w: F.linear(x, w), lambda torch, x, w: torch.nn.functional.linear(x, w), [(2, 4, 3), (5, 3)]),
    "softmax": (lambda x: F.softmax(x, 1), lambda torch, x: torch.softmax(x, 1), [(4, 3)]),
    "log_softmax": (lambda x: F.log_softmax(x, -1), lambda torch, x: torch.log_softmax(x, -1), [(4, 3)]),
    "log_softmax_dim0": (lambda x: F.log_softmax(x, 0), lambda torch, x: torch.log_softmax(x, 0), [(4, 3)]),
    "cross_entropy": (lambda x: F.cross_entropy(x, LABELS),
                      lambda torch, x: torch.nn.functional.cross_entropy(x, torch.tensor(LABELS)), [(4, 3)]),
    "cross_entropy_sum": (lambda x: F.cross_entropy(x, LABELS, reduction="sum"),
                          lambda torch, x: torch.nn.functional.cross_entropy(x, torch.tensor(LABELS), reduction="sum"), [(4, 3)]),
    "mse_loss": (lambda x, y: F.mse_loss(x, y), lambda torch, x, y: torch.nn.functional.mse_loss(x, y), [(4, 3), (4, 3)]),
    "relu": (lambda x: F.relu(x), lambda torch, x: torch.relu(x), [(4, 3)]),
}

def _inputs(shapes, seed, dtype):
    rng = np.random.default_rng(seed)
    return [mc.tensor(rng.standard_normal(s), requires_grad=True, dtype=dtype) for s in shapes]


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradients_first_and_second_order(name):
    fn, _, shapes = CASES[name]
    inputs = _inputs(shapes, 0, mc.float64)
    assert gradcheck(fn, inputs) and gradgradcheck(fn, inputs)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_against_torch(name, dtype):
    torch = pytest.importorskip("torch")
    fn, torch_fn, shapes = CASES[name]
    ours = _inputs(shapes, 1, dtype)
    theirs = [torch.tensor(x.numpy(), requires_grad=True) for x in ours]
    out, expected = fn(*ours), torch_fn(torch, *theirs)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), **tol)
    # random weights, not a plain sum: softmax's gradient of a sum is zero but for rounding
    weights = np.random.default_rng(2).standard_normal(out.shape).astype(dtype)
    (out * mc.tensor(weights, dtype=dtype)).sum().backward()
    (expected * torch.tensor(weights)).sum().backward()
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), **tol)


def test_softmax_is_stable_for_huge_logits():
    p = F.softmax(mc.tensor([[1000.0, 0.0, -1000.0]]), 1)
    np.testing.assert_allclose(p.numpy(), [[1.0, 0.0, 0.0]])
    assert np.isfinite(F.cross_entropy(mc.tensor([[1000.0, -1000.0]]), [1]).item())


def test_softmax_edge_shapes():
    """As in torch: a 0-d tensor's softmax along axis 0 or -1 is 1 (its log 0, with gradient 0); an
    empty axis gives an empty result and a row of -inf, or one holding +inf, NaN, neither with a
    warning; transposing a 0-d tensor returns it. An integer tensor's softmax is a float64 one."""
    x = mc.tensor(3.0, requires_grad=True, dtype=mc.float64)
    for dim in (0, -1):
        assert F.softmax(x, dim).item() == 1.0 and F.log_softmax(x, dim).item() == 0.0
    F.log_softmax(x, -1).backward()
    assert x.grad.item() == 0.0
    assert x.transpose(0, -1).item() == 3.0
    empty = mc.zeros(2, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert F.log_softmax(empty, 1).shape == (2, 0) and F.softmax(empty, 1).shape == (2, 0)
        row = F.softmax(mc.tensor([[-np.inf, -np.inf], [np.inf, 0.0]]), 1)
    assert np.isnan(row.numpy()).all()  # torch's too: inf - inf in the shift
    ints = F.softmax(mc.Tensor(np.array([2, 2])), 0)
    assert ints.dtype == np.float64 and ints.tolist() == [0.5, 0.5]


def test_dropout():
    mc.manual_seed(0)
    x = mc.ones(200, 100, requires_grad=True)
    y = F.dropout(x, 0.3)
    kept = y.numpy() != 0
    assert abs(kept.mean() - 0.7) < 0.01
    np.testing.assert_allclose(y.numpy()[kept], 1 / 0.7, rtol=1e-6)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), y.numpy())  # the gradient is the same mask
    assert F.dropout(x, 0.3, training=False) is x
    assert F.dropout(x, 1.0).numpy().sum() == 0


def test_bad_arguments():
    x = mc.zeros(4, 3)
    with pytest.raises(ValueError, match=r"input of shape \(4, 3\) does not match weight of shape \(2, 5\)"):
        F.linear(x, mc.zeros(2, 5))
    with pytest.raises(ValueError, match="bias must have shape"):
        F.linear(x, mc.zeros(2, 3), mc.zeros(3))
    with pytest.raises(TypeError, match="weight must be a Tensor"):
        F.linear(x, np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"target values must lie in \[0, 3\)"):
        F.cross_entropy(x, [0, 1, 2, 3])
    with pytest.raises(ValueError, match=r"target must have shape \(4,\)"):
        F.cross_entropy(x, [0, 1])
    with pytest.raises(TypeError, match="integer class"):
        F.cross_entropy(x, [0.5, 1, 2, 0])
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(x, [0, 1, 2, 0], reduction="avg")
    with pytest.raises(ValueError, match="p must be in"):
        F.dropout(x, 1.5)
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(3,\)"):
        F.mse_loss(x, mc.zeros(3))
