"""Optimisers: PyTorch's update formulas, checked against torch and against numpy written from the paper."""
import math

import numpy as np
import pytest

import minitorch_conv as mc
from minitorch_conv import nn, optim, serialization

SHAPES = [(3, 4), (5,)]
STEPS = 6


def start_and_grads(dtype, seed=0):
    """Initial values for two parameters and a fixed sequence of their gradients."""
    rng = np.random.default_rng(seed)
    start = [rng.standard_normal(shape).astype(dtype) for shape in SHAPES]
    grads = [[rng.standard_normal(shape).astype(dtype) for shape in SHAPES] for _ in range(STEPS)]
    return start, grads


def run_ours(make, start, grads):
    params = [nn.Parameter(value.copy()) for value in start]
    optimizer = make(params)
    for step_grads in grads:
        optimizer.zero_grad()
        # sum(p * c) has gradient exactly c: both frameworks see identical gradients
        loss = sum((param * mc.tensor(grad)).sum() for param, grad in zip(params, step_grads))
        loss.backward()
        optimizer.step()
    return [param.numpy() for param in params]


def run_torch(torch, make, start, grads):
    params = [torch.nn.Parameter(torch.from_numpy(value.copy())) for value in start]
    optimizer = make(params)
    for step_grads in grads:
        optimizer.zero_grad()
        loss = sum((param * torch.from_numpy(grad)).sum() for param, grad in zip(params, step_grads))
        loss.backward()
        optimizer.step()
    return [param.detach().numpy() for param in params]


CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.1, weight_decay=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.8, dampening=0.3)),
    ("SGD", dict(lr=0.05, momentum=0.9, weight_decay=0.01, nesterov=True)),
    ("Adam", dict()),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, weight_decay=0.1)),
    ("Adam", dict(lr=0.02, betas=(0.5, 0.9), eps=1e-6)),
]
TOLERANCES = {"float32": dict(rtol=1e-5, atol=1e-7), "float64": dict(rtol=1e-12, atol=1e-14)}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=[f"{name}-{kwargs}" for name, kwargs in CONFIGS])
def test_matches_torch(name, kwargs, dtype):
    torch = pytest.importorskip("torch")
    start, grads = start_and_grads(dtype)
    ours = run_ours(lambda params: getattr(optim, name)(params, **kwargs), start, grads)
    theirs = run_torch(torch, lambda params: getattr(torch.optim, name)(params, **kwargs), start, grads)
    for our_value, their_value, initial in zip(ours, theirs, start):
        assert our_value.dtype == np.dtype(dtype)
        assert not np.allclose(our_value, initial)  # the run did move the parameters
        np.testing.assert_allclose(our_value, their_value, **TOLERANCES[dtype])


# --- torch-free: numpy written from the algorithms in PyTorch's documentation -------------------


def test_sgd_two_steps_against_numpy():
    lr, momentum, dampening, weight_decay = 0.1, 0.9, 0.25, 0.01
    start, grads = start_and_grads("float64")
    p = start[0].copy()
    buffer = None
    for g in (grads[0][0], grads[1][0]):
        d = g + weight_decay * p
        buffer = d.copy() if buffer is None else momentum * buffer + (1 - dampening) * d
        p = p - lr * buffer
    ours = run_ours(lambda params: optim.SGD(params, lr, momentum, dampening, weight_decay), start, grads[:2])
    np.testing.assert_allclose(ours[0], p, rtol=1e-13, atol=1e-15)


def test_sgd_nesterov_two_steps_against_numpy():
    lr, momentum = 0.1, 0.9
    start, grads = start_and_grads("float64")
    p = start[1].copy()
    buffer = None
    for g in (grads[0][1], grads[1][1]):
        buffer = g.copy() if buffer is None else momentum * buffer + g
        p = p - lr * (g + momentum * buffer)
    ours = run_ours(lambda params: optim.SGD(params, lr, momentum=momentum, nesterov=True), start, grads[:2])
    np.testing.assert_allclose(ours[1], p, rtol=1e-13, atol=1e-15)


def test_adam_three_steps_against_numpy():
    lr, beta1, beta2, eps, weight_decay = 0.01, 0.8, 0.99, 1e-8, 0.1
    start, grads = start_and_grads("float64")
    p = start[0].copy()
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t in (1, 2, 3):
        g = grads[t - 1][0] + weight_decay * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        m_hat = m / (1 - beta1**t)
        v_hat = v / (1 - beta2**t)
        # Kingma & Ba write eps next to sqrt(v_hat); PyTorch's eps sits in the same place.
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    ours = run_ours(lambda params: optim.Adam(params, lr, (beta1, beta2), eps, weight_decay), start, grads[:3])
    np.testing.assert_allclose(ours[0], p, rtol=1e-12, atol=1e-14)


def test_adam_first_step_moves_each_entry_by_about_lr():
    # With m_hat = g and v_hat = g^2 after one step, the update is lr * g / (|g| + eps) = lr * sign(g).
    param = nn.Parameter(np.array([1.0, -2.0, 3.0], dtype=np.float64))
    (param * mc.tensor(np.array([4.0, -0.5, 1e-3]))).sum().backward()
    optim.Adam([param], lr=0.1, eps=0.0).step()
    np.testing.assert_allclose(param.numpy(), [0.9, -1.9, 2.9], rtol=1e-14)


def test_sgd_one_step_by_hand():
    param = nn.Parameter(np.array([1.0, 2.0], dtype=np.float32))
    (param * mc.tensor(np.array([2.0, -1.0], dtype=np.float32))).sum().backward()
    optim.SGD([param], lr=0.1).step()
    np.testing.assert_allclose(param.numpy(), [0.8, 2.1], rtol=1e-7)


# --- behaviour -----------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, 0.1, momentum=0.9), lambda ps: optim.Adam(ps)])
def test_updates_in_place_keep_dtype_and_skip_params_without_grad(make):
    used = nn.Parameter(np.ones(3, dtype=np.float32))
    unused = nn.Parameter(np.ones(2, dtype=np.float64))
    optimizer = make([used, unused])
    array = used.data
    (used * 2.0).sum().backward()
    optimizer.step()
    assert used.data is array and used.dtype == np.float32  # updated in place, still float32
    assert np.all(used.numpy() < 1.0)
    np.testing.assert_array_equal(unused.numpy(), np.ones(2))
    assert 1 not in optimizer.state  # no state made for a parameter that never had a gradient


def test_zero_grad_clears_grads():
    param = nn.Parameter(np.ones(2, dtype=np.float32))
    optimizer = optim.SGD([param], lr=0.1)
    param.sum().backward()
    optimizer.zero_grad()
    assert param.grad is None


def test_step_with_a_closure_returns_its_loss():
    param = nn.Parameter(np.array([3.0], dtype=np.float32))
    optimizer = optim.SGD([param], lr=0.25)

    def closure():
        optimizer.zero_grad()
        loss = (param * param).sum()
        loss.backward()
        return loss

    assert optimizer.step(closure).item() == 9.0
    np.testing.assert_array_equal(param.numpy(), [1.5])  # 3 - 0.25 * 2 * 3


def test_accepts_a_generator_of_parameters_and_lr_can_be_changed():
    model = nn.Linear(2, 2)
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    assert len(optimizer.params) == 2
    optimizer.lr = 0.0
    before = model.weight.numpy().copy()
    model(mc.ones(1, 2)).sum().backward()
    optimizer.step()
    np.testing.assert_array_equal(model.weight.numpy(), before)


@pytest.mark.parametrize("name", ["SGD", "Adam"])
def test_state_dict_resumes_exactly_even_through_save_and_load(name, tmp_path):
    kwargs = dict(lr=0.1, momentum=0.9, nesterov=True) if name == "SGD" else dict(lr=0.05, weight_decay=0.01)
    start, grads = start_and_grads("float32", seed=5)

    def step(params, optimizer, step_grads):
        optimizer.zero_grad()
        sum((p * mc.tensor(g)).sum() for p, g in zip(params, step_grads)).backward()
        optimizer.step()

    params = [nn.Parameter(value.copy()) for value in start]
    optimizer = getattr(optim, name)(params, **kwargs)
    for step_grads in grads[:3]:
        step(params, optimizer, step_grads)
    serialization.save({"params": [p.numpy() for p in params], "optimizer": optimizer.state_dict()}, tmp_path / "ckpt")

    checkpoint = serialization.load(tmp_path / "ckpt")
    resumed_params = [nn.Parameter(value) for value in checkpoint["params"]]
    resumed = getattr(optim, name)(resumed_params, lr=123.0)
    resumed.load_state_dict(checkpoint["optimizer"])
    assert resumed.lr == kwargs["lr"]
    for step_grads in grads[3:]:
        step(params, optimizer, step_grads)
        step(resumed_params, resumed, step_grads)
    for original, copy in zip(params, resumed_params):
        np.testing.assert_array_equal(original.numpy(), copy.numpy())


def test_load_state_dict_rejects_mismatches():
    param = nn.Parameter(np.ones(3, dtype=np.float32))
    optimizer = optim.SGD([param], lr=0.1, momentum=0.9)
    param.sum().backward()
    optimizer.step()
    state = optimizer.state_dict()
    state["state"][0]["momentum_buffer"] = np.zeros(4)
    with pytest.raises(ValueError, match="shape"):
        optimizer.load_state_dict(state)
    with pytest.raises(ValueError, match="this optimizer has 2"):
        optim.SGD([param, nn.Parameter(np.ones(1, dtype=np.float32))], lr=0.1).load_state_dict(optimizer.state_dict())
    with pytest.raises(ValueError):
        optimizer.load_state_dict({"nonsense": 1})


def test_state_dict_is_a_copy():
    param = nn.Parameter(np.ones(3, dtype=np.float32))
    optimizer = optim.Adam([param])
    param.sum().backward()
    optimizer.step()
    state = optimizer.state_dict()
    state["state"][0]["exp_avg"][...] = 99
    assert optimizer.state[0]["exp_avg"].max() < 1


# --- argument validation ---------------------------------------------------------------------------


def one_param():
    return [nn.Parameter(np.ones(2, dtype=np.float32))]


@pytest.mark.parametrize(
    "make, error, argument",
    [
        (lambda: optim.SGD(one_param(), lr=-0.1), ValueError, "lr"),
        (lambda: optim.SGD(one_param(), lr=math.nan), ValueError, "lr"),
        (lambda: optim.SGD(one_param(), lr="0.1"), TypeError, "lr"),
        (lambda: optim.SGD(one_param(), lr=0.1, momentum=-0.5), ValueError, "momentum"),
        (lambda: optim.SGD(one_param(), lr=0.1, weight_decay=-1), ValueError, "weight_decay"),
        (lambda: optim.SGD(one_param(), lr=0.1, nesterov=True), ValueError, "nesterov"),
        (lambda: optim.SGD(one_param(), lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), ValueError, "dampening"),
        (lambda: optim.Adam(one_param(), lr=-1e-3), ValueError, "lr"),
        (lambda: optim.Adam(one_param(), betas=(1.0, 0.999)), ValueError, "betas"),
        (lambda: optim.Adam(one_param(), betas=(0.9, -0.1)), ValueError, "betas"),
        (lambda: optim.Adam(one_param(), betas=0.9), TypeError, "betas"),
        (lambda: optim.Adam(one_param(), eps=-1e-8), ValueError, "eps"),
        (lambda: optim.Adam(one_param(), weight_decay=-0.1), ValueError, "weight_decay"),
        (lambda: optim.Adam([]), ValueError, "empty"),
        (lambda: optim.Adam(one_param()[0]), TypeError, "iterable"),
        (lambda: optim.Adam([np.ones(2)]), TypeError, "Tensor"),
    ],
)
def test_bad_arguments_name_the_argument(make, error, argument):
    with pytest.raises(error, match=argument):
        make()


def test_a_parameter_listed_twice_is_refused():
    param = nn.Parameter(np.ones(2, dtype=np.float32))
    with pytest.raises(ValueError, match="more than once"):
        optim.SGD([param, param], lr=0.1)
