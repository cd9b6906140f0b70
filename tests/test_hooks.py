import pytest
import torch
from torch import nn

import xaihelpers as xh
from xaihelpers.hooks import layer_names


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))


def test_record_activations_and_gradients():
    net = _net()
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    with xh.record(net, ["0", "1"], gradients=True) as rec:
        y = net(x)
        y[:, 1].sum().backward()
    assert rec.activations["0"].shape == (2, 4, 8, 8)
    assert torch.equal(rec.activations["1"], rec.activations["0"].clamp(min=0))
    # d y_1 / d relu_out = w_1 / 64 at every position (average pooling then linear)
    expected = (net[4].weight[1] / 64).view(1, 4, 1, 1).expand(2, 4, 8, 8)
    assert torch.allclose(rec.gradients["1"], expected, atol=1e-6)
    assert not net[0]._forward_hooks and not net[1]._forward_hooks


def test_hooks_are_removed_when_the_block_raises():
    net = _net()
    with pytest.raises(RuntimeError, match="boom"):
        with xh.record(net, "0"):
            raise RuntimeError("boom")
    assert all(not m._forward_hooks for m in net.modules())


def test_unknown_layer_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown"):
        with xh.record(_net(), ["features.99"]):
            pass


def test_layer_names_filters_by_type():
    assert layer_names(_net(), (nn.Conv2d, nn.Linear)) == ["0", "4"]
