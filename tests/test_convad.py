"""ConvAD: the all-ones theorem, no influence of masked pixels, the position attribution."""

import pytest
import torch
import torchvision
from torch import nn

from xaihelpers import convad, models


def _archs():
    torch.manual_seed(0)
    return {
        "benchmark_relu": models.BenchmarkCNN("relu"),
        "benchmark_gelu": models.BenchmarkCNN("gelu"),
        "resnet18": torchvision.models.resnet18(num_classes=10),
        "vgg11_bn": torchvision.models.vgg11_bn(num_classes=10),
        "efficientnet_lite0": models.EfficientNetLite0(num_classes=10),
    }


ARCHS = _archs()


def _randomise_bn(m):
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.3, 0.3)
            mod.running_var.uniform_(0.5, 2)
            mod.bias.data.uniform_(-0.3, 0.3)
    return m.eval()


@pytest.mark.parametrize("name", sorted(ARCHS))
@pytest.mark.parametrize("rule", convad.RULES)
def test_all_ones_mask_gives_the_original_logits(name, rule):
    m = _randomise_bn(ARCHS[name])
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = m(x)
        out = convad.wrap(m, rule)(x, torch.ones(2, 64, 64))
    assert torch.allclose(out, ref, atol=1e-5, rtol=1e-5)
    assert not any(mod._forward_hooks for mod in m.modules())


@pytest.mark.parametrize("rule", convad.RULES)
@pytest.mark.parametrize("name", ["benchmark_relu", "resnet18", "efficientnet_lite0"])
def test_masked_pixels_have_no_influence(name, rule):
    m = models.load_model("efficientnet_lite0").model if name == "efficientnet_lite0" else _randomise_bn(ARCHS[name])
    ad = convad.wrap(m, rule)
    side = 128 if name == "efficientnet_lite0" else 64
    x = torch.randn(1, 3, side, side)
    mask = torch.zeros(1, side, side)
    mask[:, side // 8 : -side // 8, side // 8 : -side // 8] = 1  # a large visible window
    x2 = x.clone()
    x2[..., mask[0] == 0] = torch.randn_like(x2[..., mask[0] == 0]) * 5
    with torch.no_grad():
        a, b = ad(x, mask), ad(x2, mask)
        plain_a, plain_b = m(x), m(x2)
    assert torch.allclose(a, b, atol=1e-5)
    assert ad.fractions[0].max() > 1 - 1e-6  # the visible window is seen
    assert not torch.allclose(plain_a, plain_b, atol=1e-4)  # without ConvAD they do change the output


def test_batch_norm_leaks_without_deactivating_pointwise_layers():
    m = _randomise_bn(ARCHS["benchmark_relu"])
    x = torch.randn(1, 3, 64, 64)
    mask = torch.zeros(1, 64, 64)
    mask[:, 16:48, 16:48] = 1
    with torch.no_grad():
        leak = convad.wrap(m, "strict", deactivate="spatial")
        ad = convad.wrap(m, "strict")
        # deactivated positions are no longer 0 after batch norm: different logits
        assert not torch.allclose(leak(x, mask), ad(x, mask), atol=1e-4)


def test_position_attribution_and_broadcasting():
    conv = nn.Conv2d(1, 1, 2, stride=2)
    frac = torch.tensor([[1.0, 0.0], [1.0, 0.0]])[None, None]
    # two unmasked of four; a convolution in float32, so within its rounding
    assert convad.position_attribution(frac, conv).item() == pytest.approx(0.5, abs=1e-6)
    m = _randomise_bn(ARCHS["benchmark_relu"])
    ad = convad.wrap(m)
    x = torch.randn(1, 3, 64, 64)
    masks = torch.ones(3, 64, 64)
    masks[1, :32] = 0
    masks[2] = 0
    with torch.no_grad():
        out = ad(x, masks)
        assert out.shape == (3, 10) and torch.allclose(out[0], m(x)[0], atol=1e-5)
        assert torch.allclose(out[1], ad(x, masks[1:2])[0], atol=1e-5)
    fr = ad.fractions
    assert fr and all(f.min() >= 0 and f.max() <= 1 for f in fr)


def test_errors():
    with pytest.raises(ValueError, match="LayerNorm"):
        convad.wrap(nn.Sequential(nn.Conv2d(3, 3, 3), nn.LayerNorm([3, 6, 6])))
    ad = convad.wrap(ARCHS["benchmark_relu"].eval())
    with pytest.raises(ValueError, match="masks of shape"):
        ad(torch.randn(1, 3, 64, 64), torch.ones(1, 32, 32))
    with pytest.raises(ValueError, match="rule"):
        convad.wrap(ARCHS["benchmark_relu"], "sometimes")


def test_painting_and_predict_masked():
    m = _randomise_bn(ARCHS["benchmark_relu"])
    x = torch.randn(1, 3, 64, 64)
    masks = torch.ones(4, 64, 64)
    masks[1:, 20:40, 20:40] = 0
    with torch.no_grad():
        ref = m(x)
    for how in ("convad",) + convad.MASKING:
        out = convad.predict_masked(m, x, masks, how=how, batch_size=3)
        assert out.shape == (4, 10) and torch.allclose(out[0], ref[0], atol=1e-5), how
    for value in convad.MASKING:
        painted = convad.paint(x.expand(4, -1, -1, -1), masks, value)
        assert torch.equal(painted[..., masks[1] == 1][1], x[0][..., masks[1] == 1])  # visible pixels kept
    assert convad.paint(x, masks[1:2], "max")[..., 30, 30].eq(x.max()).all()
    with pytest.raises(ValueError, match="masking value"):
        convad.paint(x, masks[:1], "pink")
    with pytest.raises(ValueError, match="one image"):
        convad.predict_masked(m, x.expand(2, -1, -1, -1), masks)
