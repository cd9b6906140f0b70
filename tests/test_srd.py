"""Sharing Ratio Decomposition: the fast path against the literal equations, conservation, architectures."""

import pytest
import torch
import torchvision
from torch import nn

from xaihelpers import models, srd


def _small(bias=True, stride=2):
    torch.manual_seed(0)
    m = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=bias), nn.ReLU(),
        nn.Conv2d(4, 5, 3, stride=stride, padding=1, bias=bias), nn.BatchNorm2d(5), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 3),
    )
    m[3].running_mean.uniform_(-0.5, 0.5)
    m[3].running_var.uniform_(0.5, 2)
    m[3].weight.data.uniform_(0.5, 1.5)
    m[3].bias.data.uniform_(-0.5, 0.5)
    return m.eval()


def test_fast_path_equals_the_literal_equations():
    m = _small()
    x = torch.randn(1, 3, 6, 6)
    low = srd.explain(m, x, 1, layer=None, start="4")  # relevance of the last PFVs (Eq. 4), (1, 3, 3)
    mid = srd.explain(m, x, 1, layer="1", start="4")  # after one decomposition step
    inp = srd.explain(m, x, 1, layer="input", start="4")
    with torch.no_grad():
        u = m[1](m[0](x))[0]
    mu2 = srd.conv_sharing_ratios(m[2], u, bn=m[3])  # Eqs. 5-6, 11 with loops
    mu0 = srd.conv_sharing_ratios(m[0], x[0])
    lit_mid = mu2 @ low.flatten()
    assert torch.allclose(mid.flatten(), lit_mid, atol=1e-5)
    # Appendix C: the forward view (ERFs built layer by layer) gives the same map
    erf = mu0 @ mu2  # ERF of every last-layer PFV over the input pixels
    assert torch.allclose(inp.flatten(), erf @ low.flatten(), atol=1e-5)


def test_relevance_is_conserved_layer_to_layer():
    m = _small()
    x = torch.randn(3, 3, 8, 8)
    low = srd.explain(m, x, [0, 1, 2], layer=None, start="4")
    for layer in ("1", "input"):
        r = srd.explain(m, x, [0, 1, 2], layer=layer, start="4")
        assert torch.allclose(r.sum((1, 2)), low.sum((1, 2)), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("activation", models.ACTIVATIONS)
def test_benchmark_cnns_conserve_and_batch(activation):
    m = models.BenchmarkCNN(activation).eval()
    x = torch.randn(2, 3, 64, 64)
    low = srd.explain(m, x, [1, 2], layer=None)
    assert low.shape == (2, 8, 8)
    high = srd.explain(m, x, [1, 2], layer="features.res1")
    inp = srd.explain(m, x, [1, 2])
    assert high.shape == (2, 16, 16) and inp.shape == (2, 64, 64)
    for r in (high, inp):
        assert torch.allclose(r.sum((1, 2)), low.sum((1, 2)), rtol=1e-3, atol=1e-5)
    alone = torch.cat([srd.explain(m, x[i : i + 1], [1, 2][i]) for i in range(2)])
    assert torch.allclose(inp, alone, atol=1e-5)


@pytest.mark.parametrize("arch", ["resnet18", "vgg11_bn"])
def test_torchvision_architectures(arch):
    torch.manual_seed(0)
    m = getattr(torchvision.models, arch)(num_classes=10).eval()
    x = torch.randn(1, 3, 64, 64)
    inp = srd.explain(m, x, 3)
    low = srd.explain(m, x, 3, layer=None)
    assert inp.shape == (1, 64, 64) and torch.isfinite(inp).all()
    assert torch.allclose(inp.sum(), low.sum(), rtol=1e-3)
    # the hooks are gone and in-place activations are restored
    assert all(not mod._forward_hooks for mod in m.modules())
    relus = [mod for mod in m.modules() if isinstance(mod, nn.ReLU)]
    assert relus and all(mod.inplace for mod in relus)


def test_efficientnet_lite0_depthwise():
    m = models.load_model("efficientnet_lite0").model
    x = torch.randn(1, 3, 96, 96)
    inp = srd.explain(m, x, 967)
    high = srd.explain(m, x, 967, layer="_blocks.4")
    low = srd.explain(m, x, 967, layer=None)
    assert inp.shape == (1, 96, 96) and high.shape[-1] == 12
    assert torch.allclose(inp.sum(), low.sum(), rtol=1e-3) and torch.allclose(high.sum(), low.sum(), rtol=1e-3)


def test_errors():
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.LayerNorm([4, 6, 6]), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                      nn.Linear(4, 2))
    with pytest.raises(ValueError, match="LayerNorm"):
        srd.explain(m, torch.randn(1, 3, 8, 8), 0, start="2")
    with pytest.raises(ValueError, match="unknown"):
        srd.explain(_small(), torch.randn(1, 3, 8, 8), 0, layer="nope", start="4")
    with pytest.raises(ValueError, match="rule"):
        srd.explain(_small(), torch.randn(1, 3, 8, 8), 0, start="4", rule="other")


def test_ablation_variants():
    m = _small()
    x = torch.randn(2, 3, 8, 8)
    vec = srd.explain(m, x, [0, 1], start="4")
    scalar = srd.explain(m, x, [0, 1], start="4", unit="scalar")
    post = srd.explain(m, x, [0, 1], start="4", vectors="post")
    assert scalar.shape == post.shape == vec.shape and not torch.allclose(scalar, vec)
    low = srd.explain(m, x, [0, 1], start="4", layer=None, unit="scalar")
    # the scalar (LRP-0-like) rule is conservative as well, neuron by neuron
    assert torch.allclose(scalar.sum((1, 2)), low.sum((1, 2)), rtol=1e-3)
    with pytest.raises(ValueError, match="unit"):
        srd.explain(m, x, 0, start="4", unit="pixel")


def test_effective_receptive_field():
    m = models.BenchmarkCNN("relu").eval()
    x = torch.randn(2, 3, 64, 64)
    e = srd.erf(m, x, "features.res2", (3, 4))
    assert e.shape == (2, 64, 64)
    assert torch.allclose(e.sum((1, 2)), torch.ones(2), atol=1e-3)
    # the PFV at (3, 4) of the 8 x 8 map sits over pixels 24-31 x 32-39: its ERF is centred there
    w = e.clamp(min=0)
    rows = (w.sum(2) * torch.arange(64)).sum(1) / w.sum((1, 2))
    cols = (w.sum(1) * torch.arange(64)).sum(1) / w.sum((1, 2))
    assert ((rows - 27.5).abs() < 8).all() and ((cols - 35.5).abs() < 8).all()
