"""Creating tensors: dtype rules, shapes, randomness, and clear errors for bad data."""
import numpy as np
import pytest

import minitorch_conv as mc


def test_dtype_rules():
    assert mc.tensor([1.0, 2.0]).dtype == np.float32
    assert mc.tensor(3).dtype == np.float32
    assert mc.tensor([True, False]).dtype == np.float32
    assert mc.tensor(np.arange(3)).dtype == np.float32
    assert mc.tensor(np.zeros(2)).dtype == np.float64  # float arrays keep their precision
    assert mc.tensor(np.zeros(2, np.float16)).dtype == np.float32
    assert mc.tensor([1.0], dtype=mc.float64).dtype == np.float64
    assert mc.tensor([1.0], dtype="float64").dtype == np.float64
    x = mc.tensor([1.0, 2.0])
    assert (x * 2.5 + 1).dtype == np.float32  # Python numbers do not promote
    assert (x + mc.tensor(np.ones(2))).dtype == np.float64


def test_tensor_copies_and_from_numpy_shares():
    a = np.zeros(3)
    t, shared = mc.tensor(a), mc.from_numpy(a)
    a[0] = 5.0
    assert t.numpy()[0] == 0.0 and shared.numpy()[0] == 5.0


def test_factories():
    assert mc.zeros(2, 3).shape == (2, 3) and mc.ones((4,)).numpy().sum() == 4
    assert mc.randn(2, 3, dtype=mc.float64).dtype == np.float64
    r = mc.rand(1000)
    assert 0.0 <= r.numpy().min() and r.numpy().max() < 1.0
    mc.manual_seed(7)
    first = mc.randn(5).numpy()
    mc.manual_seed(7)
    np.testing.assert_array_equal(first, mc.randn(5).numpy())
    assert mc.zeros(2, requires_grad=True).requires_grad


def test_describing_methods():
    x = mc.tensor([[1.0, 2.0, 3.0]])
    assert x.shape == (1, 3) and x.ndim == 2 and x.numel() == 3 and len(x) == 1
    assert x.sum().item() == 6.0 and x.tolist() == [[1.0, 2.0, 3.0]]
    assert "requires_grad=True" in repr(mc.tensor([1.0], requires_grad=True))
    assert (np.ones(3) + x).shape == (1, 3)  # numpy on the left still gives a Tensor
    assert isinstance(np.ones(3) * x, mc.Tensor)
    np.testing.assert_array_equal((x > 1.5).numpy(), [[0.0, 1.0, 1.0]])
    np.testing.assert_array_equal(np.asarray(x), x.numpy())


@pytest.mark.parametrize("bad, error, match", [
    (["a"], TypeError, "numeric|real"),
    ([1 + 2j], TypeError, "real"),
    ([object()], TypeError, "real"),
    ([[1.0], [2.0, 3.0]], TypeError, "numeric"),
])
def test_non_numeric_data_is_a_type_error(bad, error, match):
    with pytest.raises(error, match=match):
        mc.tensor(bad)


def test_bad_arguments():
    with pytest.raises(TypeError, match="dtype"):
        mc.tensor([1.0], dtype="int32")
    with pytest.raises(TypeError, match="requires_grad"):
        mc.tensor([1.0], requires_grad="yes")
    with pytest.raises(ValueError, match="non-negative"):
        mc.zeros(2, -1)
    with pytest.raises(TypeError, match="ints"):
        mc.ones(2.5)
    with pytest.raises(ValueError, match="one-element"):
        mc.tensor([1.0, 2.0]).item()
    x = mc.zeros(2, 3)
    with pytest.raises(ValueError, match=r"\(2, 3\) into \(4, 2\)"):
        x.reshape(4, 2)
    with pytest.raises(ValueError, match="only one -1"):
        x.reshape(-1, -1)
    with pytest.raises(ValueError, match="permutation"):
        x.permute(0, 0)
    with pytest.raises(ValueError, match="out of range"):
        x.sum(axis=2)
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(2, 3\) do not align"):
        x @ x
    with pytest.raises(ValueError, match="broadcast"):
        x + mc.zeros(4)
    with pytest.raises(IndexError, match=r"shape \(2, 3\)"):
        x[5]
    with pytest.raises(ValueError, match="empty"):
        mc.zeros(0, 2).max(0)
    with pytest.raises(ValueError, match="seed"):
        mc.manual_seed(-1)
