"""Metrics: cross-checks against Quantus, scikit-image and SciPy, and property tests."""

import numpy as np
import pytest
import torch
from torch import nn

from xaihelpers import metrics

N, H, W = 24, 32, 32


def _blob_masks(n=N, seed=0):
    """Rectangles of random size and position: one connected object per image."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, H, W), dtype=bool)
    boxes = np.zeros((n, 4), dtype=np.int64)
    for i in range(n):
        h, w = rng.integers(6, 16, size=2)
        y, x = rng.integers(0, H - h), rng.integers(0, W - w)
        masks[i, y : y + h, x : x + w] = True
        boxes[i] = (x, y, x + w, y + h)
    return masks, boxes


@pytest.fixture(scope="module")
def random_maps():
    return np.random.default_rng(1).normal(size=(N, H, W))


def _quantus(metric_cls, maps, masks, **kwargs):
    x = np.zeros((len(maps), 1, H, W), dtype=np.float32)
    y = np.zeros(len(maps), dtype=np.int64)
    metric = metric_cls(disable_warnings=True, display_progressbar=False, **kwargs)
    return np.asarray(metric(model=None, x_batch=x, y_batch=y, a_batch=maps[:, None].astype(np.float64),
                             s_batch=None if masks is None else masks[:, None].astype(np.float32)), dtype=float)


# -- the SRD protocol ----------------------------------------------------------------------


def test_prepare_normalises_by_max_and_clamps():
    a = torch.tensor([[[2.0, -6.0], [1.0, 0.0]]])
    out = metrics.prepare(a)
    assert out.max() == 1 and out.min() == -1  # -6 / 2 = -3 clamped
    absmax = metrics.prepare(a, "absmax")
    assert torch.allclose(absmax, a.double() / 6)
    assert torch.equal(metrics.prepare(torch.zeros(1, 2, 2)), torch.zeros(1, 2, 2, dtype=torch.float64))


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        metrics.sparseness(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="masks of the maps' shape"):
        metrics.pointing_game(np.zeros((2, 4, 4)), np.zeros((2, 5, 4)))
    with pytest.raises(TypeError):
        metrics.sparseness([[1, 2]])


# -- localisation ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["random", "constructed"])
def test_pointing_game_matches_quantus_without_tolerance(kind, random_maps):
    import quantus

    masks, _ = _blob_masks()
    maps = random_maps if kind == "random" else masks * 1.0 + 0.5 * np.roll(masks, 7, axis=2) * (np.arange(N) % 2)[:, None, None] * 3
    mine = metrics.pointing_game(maps, masks, tolerance=0)
    ref = _quantus(quantus.PointingGame, maps, masks, abs=False, normalise=False)
    assert np.array_equal(mine, ref)


def test_pointing_game_properties(random_maps):
    masks, _ = _blob_masks()
    assert np.all(metrics.pointing_game(masks * 1.0, masks) == 1)
    # a peak 3 px outside the object is a hit with tolerance 3 and a miss with 2
    m = np.zeros((1, H, W), bool)
    m[0, 10:20, 10:20] = True
    a = np.zeros((1, H, W))
    a[0, 15, 22] = 1.0
    assert metrics.pointing_game(a, m, tolerance=3)[0] == 1
    assert metrics.pointing_game(a, m, tolerance=2)[0] == 0
    assert metrics.default_tolerance(224) == 15 and metrics.default_tolerance(64) == 4
    # random maps hit at chance: the mask's share of the image
    many, _ = _blob_masks(400, seed=3)
    rnd = np.random.default_rng(4).random((400, H, W))
    hits = metrics.pointing_game(rnd, many, tolerance=0)
    share = many.mean(axis=(1, 2))
    assert abs(hits.mean() - share.mean()) < 4 * np.sqrt(share.mean() * (1 - share.mean()) / 400)
    assert np.isnan(metrics.pointing_game(a, np.zeros((1, H, W), bool))[0])


@pytest.mark.parametrize("kind", ["random", "constructed"])
def test_attribution_localisation_matches_quantus(kind, random_maps):
    import quantus

    masks, _ = _blob_masks()
    maps = np.clip(random_maps, 0, None) if kind == "random" else masks * 2.0 + np.random.default_rng(2).random((N, H, W))
    mine = metrics.attribution_localisation(maps, masks)
    ref = _quantus(quantus.AttributionLocalisation, maps, masks, abs=False, normalise=False)
    assert np.allclose(mine, ref, atol=1e-7)


def test_attribution_localisation_properties():
    masks, _ = _blob_masks()
    assert np.allclose(metrics.attribution_localisation(masks * 1.0, masks), 1)
    const = metrics.attribution_localisation(np.ones((N, H, W)), masks)
    assert np.allclose(const, masks.mean(axis=(1, 2)))  # chance: the object's share
    # negative relevance does not count
    neg = np.where(masks, 1.0, -5.0)
    assert np.allclose(metrics.attribution_localisation(neg, masks), 1)


@pytest.mark.parametrize("kind", ["random", "constructed"])
def test_sparseness_matches_quantus(kind, random_maps):
    import quantus

    masks, _ = _blob_masks()
    maps = random_maps if kind == "random" else masks * 1.0 + 0.01
    mine = metrics.sparseness(maps)
    ref = _quantus(quantus.Sparseness, maps, None, abs=True, normalise=False)
    assert np.allclose(mine, ref, atol=1e-5)


def test_sparseness_properties():
    d = H * W
    one_hot = np.zeros((1, H, W))
    one_hot[0, 3, 4] = 7.0
    assert np.isclose(metrics.sparseness(one_hot)[0], 1 - 1 / d)
    assert np.allclose(metrics.sparseness(np.full((2, H, W), 3.0)), 0)
    masks, _ = _blob_masks()
    assert np.all(metrics.sparseness(masks * 1.0) > metrics.sparseness(masks * 1.0 + 1.0))


def test_localisation_error_properties():
    masks, boxes = _blob_masks()
    for alpha in (0.5, 1.0, 2.0):
        assert np.all(metrics.localisation_error(masks * 1.0, boxes, alpha) == 0)
    # a constant map boxes the whole image (or nothing): always an error for small objects
    assert np.all(metrics.localisation_error(np.ones((N, H, W)), boxes, 0.5) == 1)
    assert metrics.box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    # the largest region wins over a smaller, brighter one
    a = np.zeros((1, H, W))
    a[0, 2:20, 2:20] = 1.0
    a[0, 25:28, 25:28] = 5.0
    assert metrics.localisation_error(a, np.array([[2, 2, 20, 20]]), alpha=0.1)[0] == 0


# -- similarity ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["random", "constructed"])
def test_ssim_matches_scikit_image(kind, random_maps):
    from skimage.metrics import structural_similarity

    masks, _ = _blob_masks()
    a = random_maps if kind == "random" else masks * 1.0
    b = a + np.random.default_rng(5).normal(scale=0.3, size=a.shape) if kind == "random" else np.roll(masks, 2, 1) * 1.0
    for data_range in (None, 2.0):
        mine = metrics.ssim(a, b, data_range=data_range)
        for i in range(N):
            rng = data_range or (max(a[i].max(), b[i].max()) - min(a[i].min(), b[i].min()))
            ref = structural_similarity(a[i], b[i], data_range=rng)
            assert mine[i] == pytest.approx(ref, abs=1e-6)
    assert np.allclose(metrics.ssim(a, a), 1)


def test_pearson_and_spearman_match_numpy_and_scipy(random_maps):
    from scipy.stats import spearmanr

    b = random_maps ** 3 + 0.5 * np.random.default_rng(6).normal(size=random_maps.shape)
    p = metrics.pearson(random_maps, b)
    s = metrics.spearman(random_maps, b)
    for i in range(N):
        assert p[i] == pytest.approx(np.corrcoef(random_maps[i].ravel(), b[i].ravel())[0, 1], abs=1e-10)
        assert s[i] == pytest.approx(spearmanr(random_maps[i].ravel(), b[i].ravel())[0], abs=1e-10)
    assert np.isnan(metrics.pearson(np.ones((1, 4, 4)), np.random.rand(1, 4, 4))[0])


# -- faithfulness and robustness, on a model whose true attribution is known -----------------------


class Linear(nn.Module):
    """Logit 0 = sum(w * x); logit 1 = c. Its exact attribution is (w * x) summed over channels."""

    def __init__(self, w, c=5.0):
        super().__init__()
        self.w = nn.Parameter(w)
        self.c = c

    def forward(self, x):
        z = (self.w * x).flatten(1).sum(1)
        return torch.stack([z, torch.full_like(z, self.c)], 1)


@pytest.fixture(scope="module")
def linear():
    gen = torch.Generator().manual_seed(0)
    w = torch.rand(1, 3, 16, 16, generator=gen) * 0.05
    x = torch.rand(6, 3, 16, 16, generator=gen)
    model = Linear(w).eval()
    exact = (w * x).sum(1)
    return model, x, exact


def test_fidelity_is_one_for_the_exact_attribution(linear):
    model, x, exact = linear
    assert np.allclose(metrics.fidelity(model, x, exact, 0, subset_size=30, n_subsets=50), 1)
    rnd = torch.rand(exact.shape, generator=torch.Generator().manual_seed(1))
    assert np.all(metrics.fidelity(model, x, rnd, 0, subset_size=30, n_subsets=50) < 0.9)
    assert np.all(np.isnan(metrics.fidelity(model, x, torch.ones_like(exact), 0, subset_size=30, n_subsets=20)))


def test_deletion_insertion_and_size_reward_the_right_order(linear):
    model, x, exact = linear
    good_del, good_ins = metrics.deletion_insertion(model, x, exact, 0, steps=16, blur_sigma=2)
    bad_del, bad_ins = metrics.deletion_insertion(model, x, -exact, 0, steps=16, blur_sigma=2)
    assert np.all(good_del < bad_del) and np.all(good_ins > bad_ins)
    assert np.all((good_del >= 0) & (good_ins <= 1))
    small = metrics.explanation_size(model, x, exact, 0, steps=20)
    large = metrics.explanation_size(model, x, -exact, 0, steps=20)
    assert np.all(small <= large) and np.all(small < 1)


def test_confidence_drop_bounds(linear):
    model, x, exact = linear
    assert np.allclose(metrics.confidence_drop(model, x, torch.ones_like(exact), 0), 0)
    drop = metrics.confidence_drop(model, x, torch.zeros_like(exact), 0)
    p = model(x).softmax(1)[:, 0].detach().numpy()
    p0 = 1 / (1 + np.exp(model.c))  # x * 0 gives logits (0, c)
    assert np.allclose(drop, np.clip(p - p0, 0, None) / p)


def test_stability(linear):
    model, x, _ = linear

    def grad_x_input(m, xb, t):
        return (m.w * xb).sum(1)

    def constant(m, xb, t):
        return torch.ones(xb.shape[0], *xb.shape[-2:])

    assert np.allclose(metrics.stability(constant, model, x, 0, n_samples=3), 0)
    s = metrics.stability(grad_x_input, model, x, 0, n_samples=3, normalise=None, clamp=False)
    # for a map linear in x the ratio is at most the operator norm, ||w||_inf * sqrt(3)
    assert np.all(s > 0) and np.all(s <= model.w.abs().max().item() * np.sqrt(3) + 1e-9)


def test_randomisation_of_a_model_free_explainer_changes_nothing(linear):
    model, x, _ = linear
    conv = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))

    def edges(m, xb, t):
        return xb.diff(dim=-1, prepend=xb[..., :1]).abs().sum(1)

    df = metrics.cascading_randomisation(edges, conv, x, 0)
    assert list(df["label"].unique()) == ["trained", "4", "0"]
    assert np.allclose(df["similarity"], 1)
    before = [p.clone() for p in conv.parameters()]
    metrics.cascading_randomisation(lambda m, xb, t: m[0](xb).sum(1), conv, x, 0)
    assert all(torch.equal(a, b) for a, b in zip(before, conv.parameters()))  # the model is not touched


def test_evaluate_and_summarise(linear):
    model, x, exact = linear
    masks = exact > exact.flatten(1).median(1).values[:, None, None]
    boxes = torch.tensor([[0, 0, 16, 16]] * len(x))
    df, maps = metrics.evaluate(lambda m, xb, t: (m.w * xb).sum(1), model, x, 0, masks, boxes,
                                stability_samples=2, fidelity_subsets=20, subset_size=20, verbose=False)
    assert len(df) == len(x) and maps.shape == (len(x), 16, 16)
    assert np.allclose(df["attribution_localisation"], metrics.attribution_localisation(maps, masks))
    part, _ = metrics.evaluate(lambda m, xb, t: (m.w * xb).sum(1), model, x, 0, masks, boxes, stability_samples=2,
                               stability_images=2, fidelity_subsets=20, subset_size=20, batch_size=4, verbose=False)
    assert part["stability"].notna().tolist() == [True, True] + [False] * (len(x) - 2)
    assert np.allclose(part["stability"][:2], df["stability"][:2])
    table = metrics.summarise({"exact": df})
    assert table.loc["exact", "n"] == len(x) and 0 <= table.loc["exact", "alpha"] <= 5
    assert table.loc["exact", "fidelity"] > 0.9
