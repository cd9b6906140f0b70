"""Explanation manipulation (chapter 3, Section 4.3): the differentiable SRD, smoothing, the attack."""

import numpy as np
import pytest
import torch

from xaihelpers import attack, data, models, srd


@pytest.fixture(scope="module")
def bench():
    cnn, prep, _ = models.load_benchmark_model("relu")
    ds = data.cluttered_fashion_mnist("test", n=4, verbose=False)
    return cnn, prep, prep.normalize(ds.images), ds.labels


def test_differentiable_srd_equals_the_taped_one(bench):
    cnn, _, x, y = bench
    cnn64, x64 = cnn.double(), x.double()
    try:
        ref = srd.explain(cnn64, x64, y).double()
        mine = attack.srd_map(cnn64, x64, y, start="contrastive").detach()
        assert torch.allclose(mine, ref, atol=1e-7 * ref.abs().max().item())
        # constant top-level ratios: conservation, every encoder position hands down relevance 1
        const = attack.srd_map(cnn64, x64).detach()
        assert torch.allclose(const.sum((1, 2)), torch.full((len(x),), 64.0, dtype=torch.float64), atol=1e-6)
    finally:
        cnn.float()


def test_differentiable_srd_has_an_input_gradient(bench):
    cnn, _, x, y = bench
    smooth = attack.smooth(cnn, beta=20.0)
    xg = x[:2].clone().requires_grad_(True)
    (g,) = torch.autograd.grad(attack.srd_map(smooth, xg).abs().sum(), xg)
    assert torch.isfinite(g).all() and g.abs().sum() > 0


def test_smooth_copies_and_converges_to_relu(bench):
    cnn, _, x, _ = bench
    with torch.no_grad():
        ref = cnn(x)
        assert torch.allclose(attack.smooth(cnn, None)(x), ref, atol=1e-6)
        far = (attack.smooth(cnn, 10.0)(x) - ref).abs().max()
        near = (attack.smooth(cnn, 1000.0)(x) - ref).abs().max()
    assert near < far
    assert any(isinstance(m, torch.nn.ReLU) for m in cnn.modules())  # the original is untouched
    with pytest.raises(ValueError, match="nn.ReLU"):
        attack.smooth(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Tanh()))


def test_guided_backprop_matches_captum(bench):
    from captum.attr import GuidedBackprop

    cnn, _, x, y = bench
    ours = attack.explanation(attack.smooth(cnn, None, guided=True), x, y, "guided_backprop")
    ref = GuidedBackprop(cnn).attribute(x.clone().requires_grad_(True), target=y).detach().sum(1).abs()
    ref = ref / ref.flatten(1).sum(1)[:, None, None]
    assert torch.allclose(ours, ref, atol=1e-6)


def test_explanations_are_normalised_maps(bench):
    cnn, _, x, y = bench
    for m in attack.METHODS:
        e = attack.explanation(attack.smooth(cnn, None, guided=m == "guided_backprop"), x[:2], y[:2], m, ig_steps=4)
        assert e.shape == (2, 64, 64) and (e >= 0).all()
        assert torch.allclose(e.sum((1, 2)), torch.ones(2), atol=1e-4), m
    with pytest.raises(ValueError, match="method"):
        attack.explanation(cnn, x, y, "occlusion")


def test_attack_moves_the_map_towards_the_target_within_the_bound(bench):
    cnn, prep, x, y = bench
    order = attack.pairs(len(x))
    assert not np.any(order == np.arange(len(x)))
    r = attack.manipulate(cnn, x, x[order], "gradient", std=prep.std, iters=40, lr=1e-3, verbose=False)
    rgb = (r["x_adv"] - x) * torch.tensor(prep.std).view(1, 3, 1, 1)
    assert rgb.abs().max() <= 8 / 255 + 1e-6
    before = np.nanmean([np.corrcoef(a.flatten(), b.flatten())[0, 1] for a, b in zip(r["original"], r["target_maps"])])
    assert r["pcc_target"].mean() > before  # the manipulated maps resemble the targets more than the originals did
    assert r["label_kept"].mean() >= 0.5
    with pytest.raises(ValueError, match="one shape"):
        attack.manipulate(cnn, x, x[:2], "gradient")
