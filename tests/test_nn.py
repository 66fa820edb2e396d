"""Modules: registration and PyTorch's names, default initialisation, state dicts, modes, errors."""
import math
import re
from collections import OrderedDict

import numpy as np
import pytest

import minitorch_conv as mc
from minitorch_conv import init, nn


def mlp(dtype=None):
    return nn.Sequential(nn.Linear(5, 7, dtype=dtype), nn.ReLU(), nn.Linear(7, 3, dtype=dtype))


# --- names, order, shapes ----------------------------------------------------------------------


def test_sequential_state_dict_names_shapes_and_order():
    state = mlp().state_dict()
    assert [(name, value.shape) for name, value in state.items()] == [
        ("0.weight", (7, 5)), ("0.bias", (7,)), ("2.weight", (3, 7)), ("2.bias", (3,)),
    ]


def test_sequential_names_and_shapes_equal_torchs():
    torch = pytest.importorskip("torch")
    ours = [(name, value.shape) for name, value in mlp().state_dict().items()]
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))
    theirs = [(name, tuple(value.shape)) for name, value in model.state_dict().items()]
    assert ours == theirs


class TwoBranches(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(np.ones(3, dtype=np.float32))
        self.features = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
        self.head = nn.Linear(3, 1, bias=False)

    def forward(self, x):
        return self.head(self.features(x) * self.scale)


def test_nested_names_follow_definition_order():
    model = TwoBranches()
    expected = ["scale", "features.0.weight", "features.0.bias", "head.weight"]
    assert [name for name, _ in model.named_parameters()] == expected
    assert list(model.state_dict()) == expected
    assert [name for name, _ in model.named_modules()] == ["", "features", "features.0", "features.1", "head"]
    assert [type(child).__name__ for child in model.children()] == ["Sequential", "Linear"]
    assert len(list(model.parameters())) == 4


def test_nested_names_equal_torchs():
    torch = pytest.importorskip("torch")

    class TorchTwoBranches(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(3))
            self.features = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU())
            self.head = torch.nn.Linear(3, 1, bias=False)

    assert list(TwoBranches().state_dict()) == list(TorchTwoBranches().state_dict())


def test_shared_layer_is_one_parameter_set_but_two_state_dict_entries():
    layer = nn.Linear(2, 2)
    model = nn.Sequential(layer, layer)
    assert len(list(model.parameters())) == 2  # an optimiser must not update it twice
    assert list(model.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]  # as torch
    assert [name for name, _ in model.named_modules()] == ["", "0"]


def test_reassigning_and_deleting_attributes_keeps_registries_right():
    model = TwoBranches()
    model.head = nn.Linear(3, 2)
    del model.scale
    assert list(model.state_dict()) == ["features.0.weight", "features.0.bias", "head.weight", "head.bias"]
    with pytest.raises(TypeError, match="head"):
        model.head = 3
    with pytest.raises(TypeError, match="weight"):
        model.head.weight = mc.tensor(np.zeros((2, 3)))
    model.head.bias = None  # an absent parameter, as with bias=False
    assert "head.bias" not in model.state_dict()


def test_assigning_a_parameter_before_super_init_is_a_clear_error():
    class Forgetful(nn.Module):
        def __init__(self):
            self.weight = nn.Parameter(np.zeros(2, dtype=np.float32))

    with pytest.raises(AttributeError, match=re.escape("super().__init__()")):
        Forgetful()


def test_parameter_is_a_tensor_that_requires_grad():
    param = nn.Parameter(np.arange(3, dtype=np.float64))
    assert isinstance(param, mc.Tensor) and param.requires_grad and param.dtype == np.float64
    assert repr(param).startswith("Parameter containing:\n")
    assert nn.Parameter(mc.tensor([1.0]), requires_grad=False).requires_grad is False
    with pytest.raises(TypeError, match="float32 or float64"):
        nn.Parameter(np.arange(3))


# --- repr ----------------------------------------------------------------------------------------


EXPECTED_MLP_REPR = """Sequential(
  (0): Linear(in_features=5, out_features=7, bias=True)
  (1): ReLU()
  (2): Linear(in_features=7, out_features=3, bias=True)
)"""


def test_repr_reads_like_torchs():
    assert repr(mlp()) == EXPECTED_MLP_REPR
    assert repr(nn.Linear(2, 3, bias=False)) == "Linear(in_features=2, out_features=3, bias=False)"
    assert repr(nn.Sequential(nn.Sequential(nn.ReLU()))) == "Sequential(\n  (0): Sequential(\n    (0): ReLU()\n  )\n)"


def test_repr_equals_torchs():
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))
    assert repr(mlp()) == repr(model)


# --- Sequential as a container -----------------------------------------------------------------


def test_sequential_indexing_len_iteration_and_append():
    first, second, third = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)
    model = nn.Sequential(first, second, third)
    assert len(model) == 3 and list(model) == [first, second, third]
    assert model[0] is first and model[-1] is third
    tail = model[1:]
    assert isinstance(tail, nn.Sequential) and list(tail) == [second, third]
    assert list(tail.state_dict()) == ["2.weight", "2.bias"]  # slices keep their names, as torch
    with pytest.raises(IndexError):
        model[3]
    with pytest.raises(TypeError):
        model["0"]
    model.append(nn.ReLU())
    assert len(model) == 4
    named = nn.Sequential(OrderedDict([("encoder", nn.Linear(2, 2)), ("act", nn.ReLU())]))
    assert list(named.state_dict()) == ["encoder.weight", "encoder.bias"]
    with pytest.raises(TypeError, match="Module"):
        nn.Sequential(nn.ReLU(), "relu")


def test_flatten_keeps_the_batch_dimension():
    x = mc.randn(2, 3, 4, 5)
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(start_dim=2)(x).shape == (2, 3, 20)
    np.testing.assert_array_equal(nn.Flatten()(x).numpy(), x.numpy().reshape(2, 60))


# --- default initialisation ----------------------------------------------------------------------


def test_fan_in_and_fan_out_follow_torch():
    assert init.calculate_fan_in_and_fan_out((7, 5)) == (5, 7)
    assert init.calculate_fan_in_and_fan_out((16, 3, 5, 5)) == (75, 400)  # conv2d weight
    assert init.calculate_fan_in_and_fan_out((8, 2, 3)) == (6, 24)  # conv1d weight
    with pytest.raises(ValueError, match="at least 2"):
        init.calculate_fan_in_and_fan_out((4,))


def test_fan_in_and_fan_out_equal_torchs():
    torch = pytest.importorskip("torch")
    for shape in [(7, 5), (16, 3, 5, 5), (8, 2, 3), (4, 6, 2, 3, 3)]:
        expected = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
        assert init.calculate_fan_in_and_fan_out(shape) == expected


def test_linear_default_init_is_uniform_within_one_over_sqrt_fan_in():
    mc.manual_seed(0)
    layer = nn.Linear(400, 300)
    bound = 1.0 / math.sqrt(400)
    weight, bias = layer.weight.numpy(), layer.bias.numpy()
    slack = 1 + 1e-6  # float32 rounding of the bound
    assert np.abs(weight).max() <= bound * slack and np.abs(bias).max() <= bound * slack
    # uniform on [-b, b]: std b/sqrt(3), and it really reaches out to the bound
    assert weight.std() == pytest.approx(bound / math.sqrt(3), rel=0.01)
    assert abs(weight.mean()) < 0.01 * bound
    assert np.abs(weight).max() > 0.999 * bound
    assert bias.std() == pytest.approx(bound / math.sqrt(3), rel=0.15)
    assert layer.weight.dtype == np.float32 and nn.Linear(2, 2, dtype="float64").weight.dtype == np.float64


def test_kaiming_uniform_bounds_match_torch_formula():
    # torch: bound = gain * sqrt(3 / fan_in), gain = sqrt(2 / (1 + a^2)) for leaky_relu
    weight = np.empty((64, 8, 3, 3), dtype=np.float64)
    init.kaiming_uniform_(weight, a=0.0)
    relu_bound = math.sqrt(2.0) * math.sqrt(3.0 / 72)
    assert np.abs(weight).max() <= relu_bound and np.abs(weight).max() > 0.99 * relu_bound
    init.kaiming_uniform_(weight, mode="fan_out")
    fan_out_bound = math.sqrt(2.0) * math.sqrt(3.0 / (64 * 9))
    assert np.abs(weight).max() <= fan_out_bound and np.abs(weight).max() > 0.99 * fan_out_bound


def test_default_init_is_reproducible_with_manual_seed():
    mc.manual_seed(123)
    first = mlp().state_dict()
    mc.manual_seed(123)
    second = mlp().state_dict()
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])
    assert not np.array_equal(first["0.weight"], mlp().state_dict()["0.weight"])


def test_default_init_fan_in_override_for_locally_connected_weights():
    weight = mc.zeros(4, 3, 2, 2, 5, 5)  # (C_out, C_in, kH, kW, H_out, W_out): fan_in is 3*2*2
    bias = mc.zeros(4, 5, 5)
    init.default_init_(weight, bias, fan_in=12)
    assert np.abs(weight.numpy()).max() <= 1 / math.sqrt(12) * (1 + 1e-6)
    assert np.abs(weight.numpy()).max() > 0.9 / math.sqrt(12)
    assert np.abs(bias.numpy()).max() > 0.9 / math.sqrt(12)


# --- moving weights between torch and us ---------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_weights_give_identical_outputs_and_grads(dtype):
    torch = pytest.importorskip("torch")
    torch_dtype = getattr(torch, dtype)
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3)).to(torch_dtype)
    ours = mlp(dtype)
    ours.load_state_dict({name: value.numpy() for name, value in theirs.state_dict().items()})

    x = np.random.default_rng(1).standard_normal((4, 5)).astype(dtype)
    out_ours, out_theirs = ours(mc.tensor(x)), theirs(torch.from_numpy(x))
    assert out_ours.dtype == np.dtype(dtype)
    forward_tol = 1e-6 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(out_ours.numpy(), out_theirs.detach().numpy(), rtol=forward_tol, atol=forward_tol)

    (out_ours**2).sum().backward()
    (out_theirs**2).sum().backward()
    theirs_params = dict(theirs.named_parameters())
    grad_tol = 1e-5 if dtype == "float32" else 1e-12
    for name, param in ours.named_parameters():
        their_grad = theirs_params[name].grad.numpy()
        np.testing.assert_allclose(param.grad.numpy(), their_grad, rtol=grad_tol, atol=grad_tol * 1e-2)


def test_our_weights_load_into_torch_and_agree():
    torch = pytest.importorskip("torch")
    ours = mlp()
    theirs = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))
    theirs.load_state_dict({name: torch.from_numpy(value) for name, value in ours.state_dict().items()})
    x = np.random.default_rng(2).standard_normal((3, 5)).astype(np.float32)
    their_output = theirs(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(ours(mc.tensor(x)).numpy(), their_output, rtol=1e-6, atol=1e-6)


# --- state dicts ---------------------------------------------------------------------------------


def test_state_dict_values_are_numpy_copies():
    model = mlp()
    state = model.state_dict()
    assert all(type(value) is np.ndarray for value in state.values())
    state["0.weight"][...] = 0
    assert np.abs(model[0].weight.numpy()).max() > 0


def test_load_state_dict_copies_in_place_and_keeps_the_parameter_dtype():
    model = mlp()
    weight_before = model[0].weight
    array_before = model[0].weight.data
    source = {name: value.astype(np.float64) + 1 for name, value in mlp().state_dict().items()}
    source["2.bias"] = mc.tensor(source["2.bias"])  # Tensors are accepted as well
    model.load_state_dict(source)
    assert model[0].weight is weight_before and model[0].weight.data is array_before  # optimisers keep working
    assert model[0].weight.dtype == np.float32
    np.testing.assert_allclose(model[0].weight.numpy(), source["0.weight"], rtol=1e-6)
    np.testing.assert_allclose(model[2].bias.numpy(), source["2.bias"].numpy(), rtol=1e-6)


def test_load_state_dict_reports_missing_and_unexpected_keys():
    model = mlp()
    state = model.state_dict()
    del state["2.bias"]
    state["3.weight"] = np.zeros((1, 1), dtype=np.float32)
    with pytest.raises(ValueError) as error:
        model.load_state_dict(state)
    assert "'2.bias'" in str(error.value) and "'3.weight'" in str(error.value)
    assert "missing" in str(error.value).lower() and "unexpected" in str(error.value).lower()


def test_load_state_dict_reports_shape_mismatch_and_changes_nothing():
    model = mlp()
    before = model.state_dict()
    state = {name: value + 1 for name, value in before.items()}
    state["2.weight"] = np.zeros((7, 3), dtype=np.float32)
    with pytest.raises(ValueError) as error:
        model.load_state_dict(state)
    message = str(error.value)
    assert "'2.weight'" in message and "(7, 3)" in message and "(3, 7)" in message
    for name, value in model.state_dict().items():  # all or nothing: 0.weight was not loaded either
        np.testing.assert_array_equal(value, before[name])


def test_load_state_dict_non_strict_returns_the_key_lists_and_loads_the_rest():
    model = mlp()
    state = {"0.weight": np.ones((7, 5), dtype=np.float32), "extra": np.zeros(1)}
    result = model.load_state_dict(state, strict=False)
    assert result.missing_keys == ["0.bias", "2.weight", "2.bias"] and result.unexpected_keys == ["extra"]
    np.testing.assert_array_equal(model[0].weight.numpy(), np.ones((7, 5)))
    with pytest.raises(ValueError, match="0.weight"):
        model.load_state_dict({"0.weight": np.ones((5, 7))}, strict=False)


def test_load_state_dict_rejects_non_mappings_and_non_numbers():
    model = mlp()
    with pytest.raises(TypeError, match="mapping"):
        model.load_state_dict([("0.weight", np.zeros((7, 5)))])
    state = model.state_dict()
    state["0.bias"] = np.array(["a"] * 7)
    with pytest.raises(TypeError, match="0.bias"):
        model.load_state_dict(state)


# --- modes, grads, running -----------------------------------------------------------------------


def test_train_and_eval_toggle_dropout_everywhere():
    model = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.Dropout(0.5)))
    x = mc.ones(1000, 4)
    assert model.training and model[1][0].training
    model.eval()
    assert not model.training and not model[1][0].training
    np.testing.assert_array_equal(model(x).numpy(), model[0](x).numpy())
    model.train()
    assert model[1][0].training
    dense = model[0](x).numpy()
    dropped = model(x).numpy()
    zeroed = dropped == 0
    assert 0.4 < zeroed.mean() < 0.6
    np.testing.assert_allclose(dropped[~zeroed], 2 * dense[~zeroed], rtol=1e-6)  # survivors scaled by 1/(1-p)
    assert model.train(False) is model and not model[1][0].training


def test_zero_grad_clears_every_parameter_grad():
    model = mlp()
    model(mc.randn(2, 5)).sum().backward()
    assert all(param.grad is not None for param in model.parameters())
    model.zero_grad()
    assert all(param.grad is None for param in model.parameters())


def test_linear_without_bias_and_float64():
    layer = nn.Linear(3, 2, bias=False, dtype=np.float64)
    x = np.random.default_rng(3).standard_normal((4, 3))
    np.testing.assert_allclose(layer(mc.tensor(x)).numpy(), x @ layer.weight.numpy().T, rtol=1e-12)
    assert layer.bias is None and list(layer.state_dict()) == ["weight"]


def test_module_without_forward_says_so():
    with pytest.raises(NotImplementedError, match="forward"):
        nn.Module()(mc.ones(1))


# --- constructor validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, error, argument",
    [
        (lambda: nn.Linear(0, 3), ValueError, "in_features"),
        (lambda: nn.Linear(3, -1), ValueError, "out_features"),
        (lambda: nn.Linear(2.5, 3), TypeError, "in_features"),
        (lambda: nn.Linear(True, 3), TypeError, "in_features"),
        (lambda: nn.Linear(2, 3, bias="yes"), TypeError, "bias"),
        (lambda: nn.Linear(2, 3, dtype="int32"), TypeError, "dtype"),
        (lambda: nn.Dropout(1.5), ValueError, "p"),
        (lambda: nn.Dropout("half"), TypeError, "p"),
        (lambda: nn.Flatten(1.0), TypeError, "start_dim"),
    ],
)
def test_bad_constructor_arguments_name_the_argument(make, error, argument):
    with pytest.raises(error, match=argument):
        make()
