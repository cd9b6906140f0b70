"""Explanation manipulation (chapter 3, Section 4.3): the differentiable SRD, smoothing, the attack."""

import numpy as np
import pytest
import torch

from xaihelpers import attack, benchmark, benchmark_models, models, srd, viz


@pytest.fixture(scope="module")
def bench():
    cnn, prep, _ = benchmark_models.load_benchmark_model("relu")
    ds = benchmark.cluttered_fashion_mnist("test", n=4, verbose=False)
    return cnn, prep, prep.normalize(ds.images), ds.labels


def test_srd_in_the_graph_equals_the_plain_maps(bench):
    cnn, _, x, y = bench
    cnn64, x64 = cnn.double(), x.double()
    try:
        for rule in ("contrastive", "constant"):
            ref = srd.explain(cnn64, x64, y, rule=rule)
            mine = srd.explain(cnn64, x64, y, rule=rule, create_graph=True)
            assert mine.requires_grad and torch.allclose(mine.detach(), ref, atol=1e-9 * ref.abs().max().item())
        # constant top-level ratios: conservation, every encoder position (8 x 8) hands down relevance 1
        assert torch.allclose(ref.sum((1, 2)), torch.full((len(x),), 64.0, dtype=torch.float64), atol=1e-6)
    finally:
        cnn.float()


@pytest.mark.parametrize("rule", ["constant", "contrastive"])
def test_srd_input_gradient_matches_finite_differences(bench, rule):
    # noise images: no ties in the max-pools, whose switches make the map jump
    cnn = bench[0]
    smooth = attack.smooth(cnn, beta=20.0).double()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64, generator=g)
    d = torch.randn(x.shape, dtype=torch.float64, generator=g)
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(srd.explain(smooth, xg, [1, 2], rule=rule, create_graph=True).pow(2).sum(), xg)

    def f(z):
        return srd.explain(smooth, z, [1, 2], rule=rule).pow(2).sum()

    eps = 1e-6
    fd = (f(x + eps * d) - f(x - eps * d)) / (2 * eps)
    assert torch.isclose((grad * d).sum(), fd, rtol=1e-4), ((grad * d).sum().item(), fd.item())


def test_efficientnet_is_smoothed_and_differentiable():
    net = models.EfficientNetLite0().eval()
    soft = attack.smooth(net, beta=10.0)
    assert not any(isinstance(m, (torch.nn.ReLU, torch.nn.ReLU6)) for m in soft.modules())
    assert sum(isinstance(m, attack.SmoothReLU) and m.cap == 6.0 for m in soft.modules()) == \
        sum(isinstance(m, torch.nn.ReLU6) for m in net.modules())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(attack.smooth(net, None)(x), net(x), atol=1e-5)
    xg = x.clone().requires_grad_(True)
    e = attack.explanation(soft, xg, 3, "srd", create_graph=True)
    (g,) = torch.autograd.grad(e.pow(2).sum(), xg)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    plain = srd.explain(net, x, 3, rule="constant").abs()
    assert torch.allclose(attack.explanation(attack.smooth(net, None), x, 3, "srd"), plain / plain.sum(), atol=1e-6)


def test_smooth_copies_and_converges_to_relu(bench):
    cnn, _, x, _ = bench
    with torch.no_grad():
        ref = cnn(x)
        assert torch.allclose(attack.smooth(cnn, None)(x), ref, atol=1e-6)
        far = (attack.smooth(cnn, 10.0)(x) - ref).abs().max()
        near = (attack.smooth(cnn, 1000.0)(x) - ref).abs().max()
    assert near < far
    assert any(isinstance(m, torch.nn.ReLU) for m in cnn.modules())  # the original is untouched
    with pytest.raises(ValueError, match="nn.ReLU6"):
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


def test_summary_and_plots_of_an_attack(bench):
    import matplotlib

    matplotlib.use("Agg")
    cnn, prep, x, y = bench
    r = attack.manipulate(cnn, x[:2], x[2:4], "gradient", std=prep.std, iters=3, lr=1e-3, verbose=False)
    tab = attack.summary({"gradient": r}, x[:2], prep.std)
    assert list(tab.index) == ["gradient"]
    assert tab.loc["gradient", "SSIM"] == pytest.approx(r["ssim"].mean())
    change = 255 * ((r["x_adv"] - x[:2]) * torch.tensor(prep.std).view(1, 3, 1, 1)).abs().max().item()
    assert tab.loc["gradient", "largest RGB change (/255)"] == pytest.approx(change) and 0 < change <= 8 + 1e-3
    fig = viz.attack_robustness({"gradient": r}, "t")
    assert len(fig.axes) == 2
    fig = viz.attack_pair({"gradient": r}, x[:2], x[2:4], prep.denormalize, "t")
    assert len(fig.axes) == 6  # 3 rows: image + one method


def test_stopping_rule_fires_and_a_stopped_image_stays_frozen(bench):
    # SRD's rule: an image stops once its RGB MSE reaches MSE_STOP or a value reaches 8/255.
    # Before the fix the MSE threshold (1e-3) lay above (8/255)^2, so no image ever stopped.
    cnn, prep, x, y = bench
    assert attack.MSE_STOP < (8 / 255) ** 2  # the threshold can be reached inside the bound
    order = attack.pairs(len(x))
    # large steps, so that every image stops within 40; a constant softplus slope, so that a shorter run
    # follows the same path (the slope's schedule is spread over the run's steps)
    kw = dict(std=prep.std, lr=1e-2, betas=(20.0, 20.0), verbose=False)
    r = attack.manipulate(cnn, x, x[order], "gradient", iters=40, **kw)
    assert r["stopped"].all() and (r["steps"] < 40).all(), r["steps"]
    rgb = ((r["x_adv"] - x) * torch.tensor(prep.std).view(1, 3, 1, 1)).flatten(1)
    reached = (rgb.pow(2).mean(1).numpy() >= attack.MSE_STOP) | (rgb.abs().amax(1).numpy() >= 8 / 255 - 1e-6)
    assert reached.all()  # every stopped image met one of the two conditions
    # the first image to stop keeps the perturbation it had then, whatever Adam's momentum does later:
    # a run cut at that step ends on the same image (the same computation twice; 1e-6 covers the
    # order of floating-point reductions, far below one Adam step of lr * std = 1e-3 in RGB units)
    first = int(np.argmin(r["steps"]))
    assert r["steps"].max() > r["steps"][first]  # the others ran on after it stopped
    cut = attack.manipulate(cnn, x, x[order], "gradient", iters=int(r["steps"][first]), **kw)
    assert torch.allclose(cut["x_adv"][first], r["x_adv"][first], atol=1e-6)


def test_mse_rule_alone_stops_at_the_threshold(bench):
    cnn, prep, x, y = bench
    order = attack.pairs(len(x))
    lr, th = 5e-3, 1e-5
    r = attack.manipulate(cnn, x, x[order], "gradient", std=prep.std, lr=lr, iters=40, stop_at_bound=False,
                          mse_stop=th, verbose=False)
    rgb = ((r["x_adv"] - x) * torch.tensor(prep.std).view(1, 3, 1, 1)).flatten(1)
    assert r["stopped"].all() and (r["steps"] < 40).all()
    mse = rgb.pow(2).mean(1)
    assert (mse >= th).all()
    # the stop comes at the first step past the threshold: one Adam step moves a normalised value by
    # about lr (1.5 lr allows for the bias correction's first steps), so the RMS change grows by at most
    # that times the std per step (triangle inequality on the RMS)
    assert (mse.sqrt() <= th ** 0.5 + 1.5 * lr * max(prep.std)).all(), mse


def test_target_maps_are_for_the_target_images_own_class(bench):
    cnn, prep, x, y = bench
    order = attack.pairs(len(x))
    with torch.no_grad():
        cs, ct = cnn(x).argmax(1), cnn(x[order]).argmax(1)
    assert (cs != ct).any()  # otherwise the test could not tell the two choices apart
    r = attack.manipulate(cnn, x, x[order], "gradient", std=prep.std, iters=1, verbose=False)
    own = attack.explanation(cnn, x[order], ct, "gradient")
    assert torch.allclose(torch.as_tensor(r["target_maps"]), own.detach(), atol=1e-6)


def test_map_weight_is_rescaled_with_the_map_size():
    # a map normalised to sum 1 over P pixels has values ~ 1/P: the MSE of two scales as 1/P^2
    assert attack.expl_weight(224 * 224) == pytest.approx(1e11)
    assert attack.expl_weight(64 * 64) == pytest.approx(1e11 * (64 * 64) ** 2 / (224 * 224) ** 2)

    def bump(size, cy, cx):  # one smooth map, sampled at size x size pixels and normalised to sum 1
        u = (torch.arange(size, dtype=torch.float64) + 0.5) / size
        m = torch.exp(-((u[:, None] - cy) ** 2 + (u[None, :] - cx) ** 2) / 0.02)
        return m / m.sum()

    loss = {s: attack.expl_weight(s * s) * (bump(s, 0.3, 0.4) - bump(s, 0.6, 0.5)).pow(2).mean() for s in (64, 224)}
    # the weighted map term is the same at both sizes (to the sampling error), unscaled it differs 150-fold
    assert float(loss[64] / loss[224]) == pytest.approx(1.0, rel=0.01)


def test_summary_values_by_hand():
    import pandas as pd

    tab = pd.DataFrame({"SSIM": [0.2, 0.9, 0.5], "PCC": [0.7, 0.1, 0.3], "label kept": [1.0, 0.5, 0.0],
                        "stopped": [0.0, 1.0, 1.0], "steps run": [10, 4, 7]}, index=["srd", "gradient", "gradcam"])
    v = attack.summary_values(tab, 6)
    assert v["best_ssim"] == "gradient" and v["best_pcc"] == "srd"
    assert v["srd_rank_ssim"] == "3 of 3" and v["srd_rank_pcc"] == "1 of 3"
    assert v["n"] == 6 and v["kept"] == pytest.approx(0.5) and v["stopped"] == pytest.approx(2 / 3) and v["steps"] == pytest.approx(7)
    assert v["json"] is tab


def test_the_stop_at_the_bound_is_credited_to_the_book():
    # Finding 7 of issue 32: the stop at the 8/255 bound was credited to Dombrowski et al., whose
    # code has no such stop (the SRD paper keeps the values within the bound, and stops on the MSE)
    import json
    from pathlib import Path

    doc = " ".join(attack.manipulate.__doc__.split())
    assert "book's choice" in doc and "The stopping rule is SRD's" not in doc
    nb = json.loads((Path(__file__).resolve().parents[1] / "notebooks" / "03_sharing_ratio_decomposition.ipynb").read_text())
    text = " ".join(" ".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown").split())
    assert "As in Dombrowski et al.'s rule" not in text
    assert "a stop of our own" in text
