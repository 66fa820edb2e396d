"""The public surface promised by the API contract exists under its names (a rename breaks users)."""
import pytest

import minitorch_conv as mc
import minitorch_conv.functional as F
import minitorch_conv.nn as nn

NAMES = {
    mc: "tensor zeros ones randn rand from_numpy Tensor grad no_grad manual_seed set_num_threads "
        "get_num_threads save load optim nn functional __version__ float32 float64",
    F: "conv1d conv2d conv3d conv_transpose1d conv_transpose2d conv_transpose3d "
       "conv1d_weight_grad conv2d_weight_grad conv3d_weight_grad conv1d_input_grad conv2d_input_grad "
       "conv3d_input_grad unfold fold tiled_conv1d tiled_conv2d local_conv1d local_conv2d "
       "max_pool1d max_pool2d max_pool3d max_unpool1d max_unpool2d max_unpool3d avg_pool1d avg_pool2d "
       "avg_pool3d lp_pool1d lp_pool2d lp_pool3d weighted_avg_pool2d maxout adaptive_avg_pool1d "
       "adaptive_avg_pool2d adaptive_avg_pool3d adaptive_max_pool1d adaptive_max_pool2d linear relu "
       "softmax log_softmax cross_entropy mse_loss dropout conv_cost",
    nn: "Module Parameter Sequential Conv1d Conv2d Conv3d ConvTranspose1d ConvTranspose2d ConvTranspose3d "
        "MaxPool1d MaxPool2d MaxPool3d AvgPool1d AvgPool2d AvgPool3d LPPool1d LPPool2d LPPool3d Maxout "
        "WeightedAvgPool2d MaxUnpool1d MaxUnpool2d MaxUnpool3d TiledConv2d LocallyConnected2d Linear ReLU "
        "Flatten Dropout AdaptiveAvgPool2d",
}


@pytest.mark.parametrize("module, name", [(m, n) for m, names in NAMES.items() for n in names.split()])
def test_public_name_exists(module, name):
    assert hasattr(module, name), f"{module.__name__}.{name} is part of the API contract"


def test_tensor_methods():
    for name in ("shape ndim dtype numpy item grad requires_grad detach backward zero_grad sum mean max "
                 "reshape transpose permute flatten flip exp log relu sigmoid tanh sqrt abs").split():
        assert hasattr(mc.Tensor, name) or name in ("grad", "requires_grad"), name
    for name in ("SGD", "Adam"):
        assert hasattr(mc.optim, name)
