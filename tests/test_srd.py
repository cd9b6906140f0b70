"""Sharing Ratio Decomposition: the fast path against the literal equations, conservation, architectures."""

import pytest
import torch
import torchvision
from torch import nn

from xaihelpers import benchmark_models, models, srd


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


@pytest.mark.parametrize("activation", benchmark_models.ACTIVATIONS)
def test_benchmark_cnns_conserve_and_batch(activation):
    m = benchmark_models.BenchmarkCNN(activation).eval()
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
    m = benchmark_models.BenchmarkCNN("relu").eval()
    x = torch.randn(2, 3, 64, 64)
    e = srd.erf(m, x, "features.res2", (3, 4))
    assert e.shape == (2, 64, 64)
    assert torch.allclose(e.sum((1, 2)), torch.ones(2), atol=1e-3)
    # the PFV at (3, 4) of the 8 x 8 map sits over pixels 24-31 x 32-39: its ERF is centred there
    w = e.clamp(min=0)
    rows = (w.sum(2) * torch.arange(64)).sum(1) / w.sum((1, 2))
    cols = (w.sum(1) * torch.arange(64)).sum(1) / w.sum((1, 2))
    assert ((rows - 27.5).abs() < 8).all() and ((cols - 35.5).abs() < 8).all()


def _literal_sharing(partials: dict, v: torch.Tensor) -> dict:
    """Eq. 6 by hand: the share of each partial vector in v."""
    return {i: float(p @ v / (v @ v)) for i, p in partials.items()}


def test_zero_norm_window_drops_exactly_its_relevance():
    torch.manual_seed(0)
    m = nn.Sequential(nn.ReLU(), nn.Conv2d(3, 5, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                      nn.Linear(5, 3)).eval()
    m[1].bias.data = torch.linspace(0.2, 1.0, 5)  # positive: an all-zero window still gives an active PFV
    x = torch.rand(1, 3, 6, 6) + 0.1
    x[..., :3, :3] = 0  # outputs (0,0), (0,1), (1,0), (1,1) see only zero-norm PFVs (or padding)
    # relevance 1 at every position (the paper's constant start), so each position's share is known
    top = srd.explain(m, x, 1, layer=None, start="2", rule="constant")
    low = srd.explain(m, x, 1, layer="0", start="2", rule="constant")
    mu = srd.conv_sharing_ratios(m[1], m[0](x)[0])
    assert torch.isfinite(mu).all()
    assert torch.allclose(low.flatten(), mu @ top.flatten(), atol=1e-5)  # the fast path drops what the loops drop
    dead = top[0, :2, :2].sum()
    assert torch.allclose(top, torch.ones(1, 6, 6)) and dead == 4
    assert torch.allclose(low.sum(), top.sum() - dead, rtol=1e-4)  # exactly the dead positions' relevance is lost
    assert torch.allclose(mu.sum(0).view(6, 6)[:2, :2], torch.zeros(2, 2))
    assert torch.allclose(mu.sum(0).view(6, 6)[2:, 2:], torch.ones(4, 4), atol=1e-5)  # elsewhere Eq. 6 sums to 1


def test_max_pool_sharing_ratios_against_a_loop():
    """Appendix: max-pool passes each channel of the argmax PFV; composed with the convolution after it."""
    torch.manual_seed(1)
    m = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 5, 3, padding=1, bias=False),
                      nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 3)).eval()
    x = torch.randn(1, 3, 8, 8)
    top = srd.explain(m, x, 2, layer=None, start="4")[0]  # 4 x 4
    got = srd.explain(m, x, 2, layer="1", start="4")[0]  # 8 x 8, the ReLU before the pool
    with torch.no_grad():
        u = m[1](m[0](x))[0]  # (4, 8, 8)
        pooled, idx = torch.nn.functional.max_pool2d(u[None], 2, return_indices=True)
        pooled, idx = pooled[0], idx[0]  # (4, 4, 4), flat indices into 8 x 8
        w = m[3].weight.detach()
    ref = torch.zeros(8, 8)
    for oy in range(4):
        for ox in range(4):
            partials = {}
            for ky in range(3):
                for kx in range(3):
                    py, px = oy + ky - 1, ox + kx - 1
                    if not (0 <= py < 4 and 0 <= px < 4):
                        continue
                    for c in range(4):  # channel c of pooled PFV p comes from position idx[c, p]
                        src = int(idx[c, py, px])
                        part = w[:, c, ky, kx] * pooled[c, py, px]
                        partials[src] = partials.get(src, 0) + part
            v = sum(partials.values())
            for src, share in _literal_sharing(partials, v).items():
                ref[src // 8, src % 8] += share * top[oy, ox]
    assert torch.allclose(got, ref, atol=1e-5)
    assert int((ref != 0).sum()) <= 4 * 16  # at most one source per channel and pooled position


class _Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.act = nn.ReLU()

    def forward(self, u):
        return self.act(self.conv(u) + u)


def test_residual_sharing_ratios_against_a_loop():
    """A skip connection adds u_j itself to v_j: the identity's partial vector competes with the convolution's."""
    torch.manual_seed(2)
    m = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), _Residual(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                      nn.Linear(4, 3)).eval()
    x = torch.randn(1, 3, 5, 5)
    top = srd.explain(m, x, 0, layer=None, start="2.act")[0]
    got = srd.explain(m, x, 0, layer="1", start="2.act")[0]
    with torch.no_grad():
        u = m[1](m[0](x))[0]
        w, b = m[2].conv.weight.detach(), m[2].conv.bias.detach()
    up = torch.nn.functional.pad(u, (1, 1, 1, 1))
    ref = torch.zeros(5, 5)
    for oy in range(5):
        for ox in range(5):
            parts, norms = {}, {}
            for ky in range(3):
                for kx in range(3):
                    iy, ix = oy + ky - 1, ox + kx - 1
                    vec = up[:, iy + 1, ix + 1]
                    parts[(iy, ix)] = w[:, :, ky, kx] @ vec
                    norms[(iy, ix)] = vec.norm()
            total = sum(norms.values())
            parts = {k: p + b * norms[k] / total for k, p in parts.items()}  # Eq. 11 over the conv's window
            parts[(oy, ox)] = parts[(oy, ox)] + u[:, oy, ox]  # the skip connection
            v = sum(parts.values())
            for (iy, ix), share in _literal_sharing(parts, v).items():
                if 0 <= iy < 5 and 0 <= ix < 5:
                    ref[iy, ix] += share * top[oy, ox]
    assert torch.allclose(got, ref, atol=1e-5)
    assert torch.allclose(got.sum(), top.sum(), rtol=1e-4)  # no zero-norm window here: conserved


def test_eq4_against_an_explicit_computation():
    """Eq. 4: R_i = relu(sum_c alpha_c A_ci), alpha_c the spatial mean of d(y_t - mean_k y_k)/dA_c."""
    m = _small()
    x = torch.randn(2, 3, 8, 8)
    t = [1, 2]
    got = srd.explain(m, x, t, layer=None, start="4")
    for n in range(2):
        a = m[:5](x[n : n + 1]).detach().requires_grad_(True)  # the last ReLU's output, (1, 5, 4, 4)
        logits = m[5:](a)[0]
        (grad,) = torch.autograd.grad(logits[t[n]] - logits.mean(), a)
        alpha = grad[0].mean((1, 2))
        ref = torch.zeros(4, 4)
        for c in range(5):  # the weighted sum over channels, one channel at a time
            ref += alpha[c] * a[0, c].detach()
        assert torch.allclose(got[n], ref.clamp(min=0), atol=1e-6)
        plain = srd.explain(m, x[n : n + 1], t[n], layer=None, start="4", rule="identity")[0]
        (g2,) = torch.autograd.grad(m[5:](a)[0, t[n]], a)
        assert torch.allclose(plain, (g2[0].mean((1, 2))[:, None, None] * a[0].detach()).sum(0).clamp(min=0), atol=1e-6)


def test_propagate_is_eq_7_by_a_literal_loop():
    g = torch.Generator().manual_seed(0)
    mu, r = torch.randn(5, 3, generator=g), torch.randn(3, generator=g)
    literal = torch.tensor([sum(float(mu[i, j] * r[j]) for j in range(3)) for i in range(5)])
    assert torch.allclose(srd.propagate(mu, r), literal, atol=1e-6)
