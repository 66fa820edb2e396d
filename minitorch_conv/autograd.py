"""The reverse-mode engine.

A tensor made by an op remembers its parents and, for each parent, a gradient rule
`rule(grad, out) -> that parent's gradient` (a row of derivatives.yaml). Backward is a topological
sort and one reverse loop that accumulates with `+`, running only the rules of parents that need a
gradient. The rules are written with Tensor ops, so with `create_graph=True` the backward pass is
itself recorded and can be differentiated again.
"""
import contextlib

import numpy as np

from . import tensor as _tensor

_grad_enabled = True


def is_grad_enabled():
    return _grad_enabled


@contextlib.contextmanager
def set_grad_enabled(mode):
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, bool(mode)
    try:
        yield
    finally:
        _grad_enabled = previous


def no_grad():
    """`with mc.no_grad():` runs ops without recording a graph."""
    return set_grad_enabled(False)


def enable_grad():
    return set_grad_enabled(True)


def record(data, parents, *rules):
    """Wrap an op's result; remember how to send its gradient to the parents that need one:
    rules[i](grad, out) is the gradient for parents[i]."""
    out = _tensor.Tensor(data)
    if _grad_enabled and any(p.requires_grad for p in parents):
        out.requires_grad = True
        out._parents = parents
        out._rules = rules
    return out


def _toposort(roots):
    """Every node that needs a gradient, parents before children (iterative: deep graphs are fine)."""
    order, done = [], set()
    stack = [(root, False) for root in roots if root.requires_grad]
    while stack:
        node, parents_done = stack.pop()
        if parents_done:
            order.append(node)
        elif id(node) not in done:
            done.add(id(node))
            stack.append((node, True))
            stack.extend((p, False) for p in node._parents if p.requires_grad and id(p) not in done)
    return order


def _backprop(outputs, grad_outputs, keep, create_graph):
    """Gradients of sum(<output, grad_output>) for the nodes in `keep` (a set of ids) and every leaf."""
    grads = {}
    for out, g in zip(outputs, grad_outputs):
        grads[id(out)] = grads[id(out)] + g if id(out) in grads else g
    leaves = {}
    with set_grad_enabled(create_graph):
        for node in reversed(_toposort(outputs)):
            g = grads.get(id(node)) if id(node) in keep else grads.pop(id(node), None)
            if g is None:
                continue
            if not node._parents:
                leaves[id(node)] = (node, g)
                continue
            for parent, rule in zip(node._parents, node._rules):
                if not parent.requires_grad:
                    continue
                pg = rule(g, node)
                if pg.shape != parent.shape:  # undo broadcasting, in one place for every op
                    pg = pg.sum_to(parent.shape)
                if pg.dtype != parent.dtype:
                    pg = pg.astype(parent.dtype)
                grads[id(parent)] = grads[id(parent)] + pg if id(parent) in grads else pg
    return grads, leaves


def _check_grad_output(out, g, where):
    if g is None:
        if out.data.size != 1:
            raise ValueError(f"{where}: grad can be omitted only for a one-element tensor, "
                             f"got an output of shape {out.shape}")
        return _tensor.Tensor(np.ones_like(out.data))
    g = g if isinstance(g, _tensor.Tensor) else _tensor.tensor(g, dtype=out.dtype)
    if g.shape != out.shape:
        raise ValueError(f"{where}: grad has shape {g.shape} but the output has shape {out.shape}")
    return g


def backward(out, grad=None, create_graph=False):
    """Accumulate d(out)/d(leaf) into every leaf's `.grad` (what `Tensor.backward` does)."""
    if not out.requires_grad:
        raise ValueError("backward: the tensor does not require grad (no input had requires_grad=True)")
    grad = _check_grad_output(out, grad, "backward")
    _, leaves = _backprop([out], [grad], set(), create_graph)
    for leaf, g in leaves.values():
        g = g if create_graph else g.detach()
        leaf.grad = g if leaf.grad is None else leaf.grad + g


def grad(outputs, inputs, grad_outputs=None, create_graph=False, allow_unused=False):
    """The gradients of `outputs` with respect to `inputs`, returned (not accumulated) as Tensors.

    With `create_graph=True` the results are part of the graph and can be differentiated again.
    """
    single = isinstance(inputs, _tensor.Tensor)
    outputs = [outputs] if isinstance(outputs, _tensor.Tensor) else list(outputs)
    inputs = [inputs] if single else list(inputs)
    if grad_outputs is None or isinstance(grad_outputs, _tensor.Tensor):
        grad_outputs = [grad_outputs] * len(outputs) if grad_outputs is None else [grad_outputs]
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"grad: got {len(grad_outputs)} grad_outputs for {len(outputs)} outputs")
    for name, group in (("outputs", outputs), ("inputs", inputs)):
        for t in group:
            if not isinstance(t, _tensor.Tensor):
                raise TypeError(f"grad: {name} must be Tensors, got {type(t).__name__}")
            if not t.requires_grad:
                raise ValueError(f"grad: one of the {name} (shape {t.shape}) does not require grad")
    grad_outputs = [_check_grad_output(o, g, "grad") for o, g in zip(outputs, grad_outputs)]
    grads, leaves = _backprop(outputs, grad_outputs, {id(t) for t in inputs}, create_graph)
    results = []
    for t in inputs:
        g = leaves[id(t)][1] if id(t) in leaves else grads.get(id(t))
        if g is None and not allow_unused:
            raise ValueError(f"grad: an input of shape {t.shape} was not used to compute the outputs "
                             "(pass allow_unused=True to get None)")
        results.append(g if g is None or create_graph else g.detach())
    return results[0] if single else tuple(results)
