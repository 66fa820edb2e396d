"""Tiled and locally connected convolution: the chapter's middle ground between a convolution
(one kernel shared everywhere) and a locally connected layer (no sharing at all).

Output position p uses the kernel slice w[..., p % tile], so the weight is
(C_out, C_in, *kernel, *tile): tile = 1 is ordinary convolution, tile = the output size is
locally connected. The op is bilinear like convolution, and its three roles close on each other
exactly as c, h and g do (STYLE.md's table):

    tiled_conv(x, w)         -> y     gradients: tiled_input_grad, tiled_weight_grad
    tiled_input_grad(w, y)   -> x-shaped    gradients: tiled_weight_grad, tiled_conv
    tiled_weight_grad(x, y)  -> w-shaped    gradients: tiled_input_grad, tiled_conv
"""
import dataclasses

from .autograd import record
from .conv import add_bias, conv_geometry, expect_tensor, launch
from .geometry import INPUT_LAYOUTS, check_size

_TILED_LAYOUTS = {1: "(C_out, C_in, k, t)", 2: "(C_out, C_in, kH, kW, tH, tW)",
                  3: "(C_out, C_in, kD, kH, kW, tD, tH, tW)"}
_LOCAL_LAYOUTS = {1: "(C_out, C_in, k, L_out)", 2: "(C_out, C_in, kH, kW, H_out, W_out)",
                  3: "(C_out, C_in, kD, kH, kW, D_out, H_out, W_out)"}


# -- the closed table ----------------------------------------------------------------------------
def tiled_conv(x, w, geom):
    """The forward pass: y[n,o,p] = sum_{i,k} w[o,i,k,p % tile] x[n,i,p*stride + k - pad]."""
    y = launch("tiled_forward", geom, x.data, w.data, geom.output_shape(len(x.data)))
    return record(y, (x, w), lambda gy, out: tiled_input_grad(w, gy, geom),
                             lambda gy, out: tiled_weight_grad(x, gy, geom))


def tiled_input_grad(w, y, geom):
    """The adjoint of tiled_conv in its input."""
    x = launch("tiled_input_grad", geom, w.data, y.data, geom.input_shape(len(y.data)))
    return record(x, (w, y), lambda gx, out: tiled_weight_grad(gx, y, geom),
                             lambda gx, out: tiled_conv(gx, w, geom))


def tiled_weight_grad(x, y, geom):
    """The adjoint of tiled_conv in its weight."""
    w = launch("tiled_weight_grad", geom, x.data, y.data, geom.weight_shape)
    return record(w, (x, y), lambda gw, out: tiled_input_grad(gw, y, geom),
                             lambda gw, out: tiled_conv(x, gw, geom))


# -- geometry ------------------------------------------------------------------------------------
def tiled_geometry(where, nd, input_shape, weight_shape, stride=1, padding=0, layout=None):
    """Check a tiled convolution's arguments; weight_shape is (C_out, C_in, *kernel, *tile).

    The kernel part goes through conv_geometry (padding int/tuple/"valid"/"same"/"full", stride,
    kernel against the padded input); the tile is the weight's last nd sizes."""
    layout = layout or _TILED_LAYOUTS[nd]
    input_shape, weight_shape = tuple(input_shape), tuple(weight_shape)
    if len(weight_shape) != 2 + 2 * nd:
        raise ValueError(f"{where}: weight must be {layout}, got shape {weight_shape}")
    if len(input_shape) != 2 + nd:
        raise ValueError(f"{where}: input must be {INPUT_LAYOUTS[nd]}, got shape {input_shape}")
    if input_shape[1] != weight_shape[1]:
        raise ValueError(f"{where}: input has {input_shape[1]} channels but weight expects {weight_shape[1]} "
                         f"(weight shape {weight_shape} is {layout})")
    tile = weight_shape[2 + nd:]
    if min(tile) < 1:
        raise ValueError(f"{where}: tile size must be >= 1 on every axis, got {tile} "
                         f"(weight shape {weight_shape} is {layout})")
    geom = conv_geometry(where, input_shape, weight_shape[:2 + nd], stride, padding)
    check_size(weight_shape, where, "weight")
    return dataclasses.replace(geom, tile=tuple(int(t) for t in tile))


def local_geometry(where, nd, input_shape, weight_shape, stride=1, padding=0):
    """A locally connected layer's geometry: weight (C_out, C_in, *kernel, *out), i.e. tiled with
    tile = the output size, which the weight's trailing sizes must equal."""
    geom = tiled_geometry(where, nd, input_shape, weight_shape, stride, padding, _LOCAL_LAYOUTS[nd])
    if geom.tile != geom.out_size:
        raise ValueError(f"{where}: weight's last {nd} sizes {geom.tile} must equal the output size "
                         f"{geom.out_size} (input {tuple(input_shape)}, weight {tuple(weight_shape)} is "
                         f"{_LOCAL_LAYOUTS[nd]}, stride {geom.stride}, padding {geom.pad}/{geom.pad_after})")
    return geom


# -- the public operations -----------------------------------------------------------------------
def tiled_convolution(nd, where, x, weight, bias, stride, padding):
    expect_tensor(x, "input", where)
    expect_tensor(weight, "weight", where)
    geom = tiled_geometry(where, nd, x.shape, weight.shape, stride, padding)
    return add_bias(tiled_conv(x, weight, geom), bias, where)


def local_convolution(nd, where, x, weight, bias, stride, padding):
    expect_tensor(x, "input", where)
    expect_tensor(weight, "weight", where)
    geom = local_geometry(where, nd, x.shape, weight.shape, stride, padding)
    y = tiled_conv(x, weight, geom)
    if bias is None:
        return y
    expect_tensor(bias, "bias", where)
    if bias.shape != y.shape[1:]:
        raise ValueError(f"{where}: bias must have shape {y.shape[1:]} (C_out, *output size), got {bias.shape}")
    return y + bias


def tiled_conv1d(x, weight, bias=None, stride=1, padding=0):
    """Tiled convolution of x (N, C_in, L) with weight (C_out, C_in, k, t): output position j uses
    kernel [..., j % t]. bias (C_out,)."""
    return tiled_convolution(1, "tiled_conv1d", x, weight, bias, stride, padding)


def tiled_conv2d(x, weight, bias=None, stride=1, padding=0):
    """Tiled convolution of x (N, C_in, H, W) with weight (C_out, C_in, kH, kW, tH, tW): output
    position (j, k) uses kernel [..., j % tH, k % tW]; tH = tW = 1 is conv2d. bias (C_out,)."""
    return tiled_convolution(2, "tiled_conv2d", x, weight, bias, stride, padding)


def tiled_conv3d(x, weight, bias=None, stride=1, padding=0):
    return tiled_convolution(3, "tiled_conv3d", x, weight, bias, stride, padding)


def local_conv1d(x, weight, bias=None, stride=1, padding=0):
    """Locally connected (unshared) 1-D layer: weight (C_out, C_in, k, L_out), bias (C_out, L_out)."""
    return local_convolution(1, "local_conv1d", x, weight, bias, stride, padding)


def local_conv2d(x, weight, bias=None, stride=1, padding=0):
    """Locally connected (unshared) 2-D layer: weight (C_out, C_in, kH, kW, H_out, W_out),
    bias (C_out, H_out, W_out). Equal to tiled_conv2d with the tile = the output size."""
    return local_convolution(2, "local_conv2d", x, weight, bias, stride, padding)


def local_conv3d(x, weight, bias=None, stride=1, padding=0):
    return local_convolution(3, "local_conv3d", x, weight, bias, stride, padding)
