"""Guided Feature Inversion: Eq. 1-4 and the two-stage optimisation."""

import pytest
import torch

from xaihelpers import benchmark, benchmark_models, data, evaluation, gfi, models, occlusion, perturbation


@pytest.fixture(scope="module")
def cnn():
    model, prep, _ = benchmark_models.load_benchmark_model("relu", device="cpu")
    ds = benchmark.cluttered_fashion_mnist("test", n=4, verbose=False)
    return model, prep.normalize(ds.images), ds.labels


def test_eq1_blend_keeps_the_image_where_the_mask_is_one():
    x, p = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    m = torch.zeros(2, 8, 8)
    m[:, :4] = 1
    out = occlusion.blend(x, m, p)
    assert torch.equal(out[..., :4, :], x[..., :4, :]) and torch.equal(out[..., 4:, :], p[..., 4:, :])
    with pytest.raises(ValueError, match="mask of shape"):
        occlusion.blend(x, torch.ones(2, 4, 4), p)


@pytest.mark.parametrize("kind", occlusion.BACKGROUNDS)
def test_backgrounds(kind):
    x = torch.randn(2, 3, 32, 32)
    p = occlusion.background(x, kind)
    assert p.shape == x.shape and torch.isfinite(p).all()
    if kind == "blur":  # smoothing lowers the pixel-to-pixel variation
        assert p.diff(dim=-1).abs().mean() < 0.5 * x.diff(dim=-1).abs().mean()
    with pytest.raises(ValueError, match="background kind"):
        occlusion.background(x, "checkerboard")


def test_eq4_mask_is_a_normalised_weighted_sum_of_channels():
    basis = torch.rand(3, 5, 4, 4)
    w = torch.rand(3, 5)
    m = gfi.mask_from_weights(w, basis, (16, 16))
    assert m.shape == (3, 16, 16) and m.min() >= 0 and torch.allclose(m.flatten(1).amax(1), torch.ones(3))
    one = torch.zeros(3, 5)
    one[:, 2] = 1.0  # one weight: the mask is that channel, upsampled
    ref = torch.nn.functional.interpolate(basis[:, 2:3], size=(16, 16), mode="bilinear", align_corners=False)[:, 0]
    assert torch.allclose(gfi.mask_from_weights(one, basis, (16, 16)), ref / ref.flatten(1).amax(1)[:, None, None])


def test_eq2_and_eq3_losses():
    f = torch.rand(2, 4, 3, 3)
    w = torch.tensor([[0.5, 0.0], [1.0, 1.0]])
    assert torch.allclose(gfi.inversion_loss(f, f, w, gamma=1.0), torch.tensor([0.25, 2.0]))
    assert torch.allclose(gfi.inversion_loss(f, f, w, gamma=1.0, penalty="l1"), torch.tensor([0.5, 2.0]))
    assert torch.allclose(gfi.inversion_loss(2 * f, f, w, gamma=0.0), torch.ones(2))  # relative error
    s = gfi.target_loss(torch.tensor([0.9, 0.2]), torch.tensor([0.1, 0.3]), w, lam=1.0, delta=0.0)
    assert torch.allclose(s, torch.tensor([-0.8, 0.1]))


def test_explain_optimises_and_leaves_the_model_alone(cnn):
    model, x, y = cnn
    before = [p.clone() for p in model.parameters()]
    r = gfi.optimise(model, x, y, iterations=20, stage1_iterations=5)
    assert r.mask.shape == (4, 64, 64) and r.mask.min() >= 0 and r.mask.max() <= 1
    assert r.stage1_mask.shape == r.mask.shape and len(r.losses) == 20
    assert r.losses[4] < r.losses[0] and r.losses[-1] < r.losses[5]  # both stages descend
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert all(p.requires_grad for p in model.parameters()) and all(p.grad is None for p in model.parameters())


def test_batching_equals_one_by_one(cnn):
    model, x, y = cnn
    together = gfi.explain(model, x[:2], y[:2], iterations=6, stage1_iterations=2)
    alone = torch.cat([gfi.explain(model, x[i : i + 1], y[i : i + 1], iterations=6, stage1_iterations=2) for i in range(2)])
    assert torch.allclose(together, alone, atol=1e-4)


@pytest.mark.parametrize("free_mask", [False, True])
def test_explain_in_double_precision(free_mask):
    model = benchmark_models.BenchmarkCNN("relu").double().eval()
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    r = gfi.optimise(model, x, [0, 1], iterations=4, stage1_iterations=2, free_mask=free_mask)
    assert r.mask.dtype == r.weights.dtype == torch.float64 and r.mask.shape == (2, 64, 64)
    assert all(isinstance(v, float) for v in r.losses) and len(r.losses) == 4


def test_free_mask_ablation_and_default_layers(cnn):
    model, x, y = cnn
    m = gfi.explain(model, x[:2], y[:2], iterations=4, stage1_iterations=2, free_mask=True)
    assert m.shape == (2, 64, 64) and ((m > 0) & (m < 1)).all()
    assert models.default_layer(model, "encoder") == "features.res2"

    class VGGLike(torch.nn.Module):  # VGG's layout: features end in the last max-pool (pool5)
        def __init__(self):
            super().__init__()
            self.features = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2))
            self.classifier = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(2))

    assert models.default_layer(VGGLike(), "encoder") == "features.2"  # GFI's l and l_1


def test_free_mask_penalty_acts_on_the_mask_and_the_mask_follows_the_object(cnn):
    # chapter 2's ablation settings; a penalty on the logits instead of the mask pulls every
    # logit to 0 and leaves a uniform mask (pixel std below 1e-4 on these images)
    model, x, y = cnn
    boxes = benchmark.cluttered_fashion_mnist("test", n=4, verbose=False).boxes
    m = gfi.explain(model, x, y, iterations=40, stage1_iterations=10, free_mask=True, bg="constant", lr=0.1)
    assert (m.flatten(1).std(1) > 0.02).all()
    inside = torch.zeros_like(m, dtype=torch.bool)
    for i, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
        inside[i, y0:y1, x0:x1] = True
    # not uniform in the way that matters: more of the mask lies on the item than around it
    for mi, ins in zip(m, inside):
        assert mi[ins].mean() > mi[~ins].mean()
    # the penalty shrinks the mask (the logits start at -2, a mask of 0.12; a penalty on
    # the logits would grow it towards 0.5)
    kw = dict(iterations=20, stage1_iterations=5, free_mask=True, bg="constant", lr=0.1)
    light = gfi.explain(model, x[:2], y[:2], gamma=0.0, delta=0.0, **kw)
    heavy = gfi.explain(model, x[:2], y[:2], gamma=50.0, delta=20.0, **kw)
    assert (heavy.mean((1, 2)) < light.mean((1, 2))).all()


def test_free_mask_at_the_package_defaults_is_not_uniform(cnn):
    # finding 6 of issue 32: at Eq. 4's learning rate (1e-2) Adam's schedule moves a logit
    # by at most travel(1e-2) = 0.2, so the free mask stayed between sigmoid(-2.2) = 0.10 and
    # sigmoid(-1.8) = 0.14 everywhere, with as much of its mass on the item as a uniform mask
    model, x, y = cnn
    boxes = benchmark.cluttered_fashion_mnist("test", n=4, verbose=False).boxes
    assert gfi.travel(gfi.LR) == pytest.approx(0.2, abs=0.01)
    # the free mask's own rate can take a pixel from the start (0.12) to a mask above 0.85
    assert torch.sigmoid(torch.tensor(gfi.FREE_MASK_START + gfi.travel(gfi.FREE_MASK_LR))) > 0.85
    m = gfi.explain(model, x, y, free_mask=True, verbose=False)  # every setting at its default
    inside = torch.zeros_like(m, dtype=torch.bool)
    for i, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
        inside[i, y0:y1, x0:x1] = True
    low = torch.sigmoid(torch.tensor(gfi.FREE_MASK_START - gfi.travel(gfi.LR)))
    for mi, ins in zip(m, inside):
        # it leaves the band a travel of 0.2 allows, on both sides: pixels kept and pixels dropped
        assert mi.min() < low / 2 and mi.max() > 0.5
        # a uniform mask puts the box's area share of its mass in the box; this one puts more
        assert mi[ins].sum() / mi.sum() > ins.float().mean() + 0.05
    with pytest.raises(ValueError, match="lr >= 0"):
        gfi.explain(model, x[:1], y[:1], free_mask=True, lr=-0.1, iterations=1)
    with pytest.raises(ValueError, match="halve_every"):
        gfi.travel(0.1, halve_every=0)


def test_gfi_never_returns_an_empty_mask(cnn):
    model, x, y = cnn
    # a huge penalty drives every weight towards 0; the last non-empty weights are kept
    m = gfi.explain(model, x[:2], y[:2], iterations=30, stage1_iterations=2, delta=1e4)
    assert torch.allclose(m.flatten(1).amax(1), torch.ones(2))


def test_tv_norm():
    m = torch.zeros(1, 4, 4)
    assert perturbation.tv_norm(m).item() == 0
    m[:, :, 2:] = 1  # one vertical edge: 4 of the 12 horizontal differences are 1
    assert torch.isclose(perturbation.tv_norm(m, beta=3), torch.tensor([4 / 12]))


def test_meaningful_perturbation_deletes_the_evidence(cnn):
    model, x, y = cnn
    before = [p.clone() for p in model.parameters()]
    sal = perturbation.explain(model, x, y, iterations=40)
    assert sal.shape == (4, 64, 64) and sal.min() >= 0 and sal.max() <= 1
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    with torch.no_grad():  # deleting the salient part lowers the class probability more than deleting as much at random
        p = occlusion.background(x, "blur")
        score = lambda keep: model(occlusion.blend(x, keep, p)).softmax(1).gather(1, y[:, None])[:, 0]  # noqa: E731
        shuffled = sal.flatten(1)[:, torch.randperm(64 * 64, generator=torch.Generator().manual_seed(0))].view_as(sal)
        assert score(1 - sal).mean() < score(1 - shuffled).mean()
    with pytest.raises(ValueError, match="at least one iteration"):
        perturbation.explain(model, x, y, iterations=0)


def test_localisation_sweep_and_benchmark():
    from xaihelpers import metrics

    boxes = torch.tensor([[8, 8, 24, 24], [0, 0, 32, 32]])
    oracle = torch.zeros(2, 32, 32)
    oracle[0, 8:24, 8:24] = 1
    oracle[1] = 1
    sweep = metrics.localisation_sweep(oracle, boxes)
    assert list(sweep.index) == list(metrics.ALPHAS) and sweep.loc[0.5] == 0
    # a flat map boxes the whole image: right for the full-image box, wrong for the 1/4-area one
    flat = metrics.localisation_sweep(torch.ones(2, 32, 32), boxes, alphas=(0.5,))
    assert flat.loc[0.5] == pytest.approx(0.5, abs=1e-12)  # the mean of one hit and one miss
    x = torch.zeros(2, 3, 32, 32)
    methods = {"oracle": lambda m, xb, t: oracle[: len(xb)], "flat": lambda m, xb, t: torch.ones(len(xb), 8, 8)}
    table, seconds = evaluation.localisation_benchmark(methods, torch.nn.Linear(1, 1), x, [0, 0], boxes, verbose=False)
    assert table.loc["oracle"].min() == 0 and table.loc["flat"].min() == 0.5 and (seconds >= 0).all()


def test_side_by_side_and_time_ratio():
    from PIL import Image

    from xaihelpers import runtime

    a, b = Image.new("RGB", (100, 50), "red"), Image.new("L", (30, 60))
    out = data.side_by_side([a, b], height=120)
    assert out.size == (240 + 60, 120) and out.mode == "RGB" and out.getpixel((0, 0)) == (255, 0, 0)
    with pytest.raises(ValueError, match="at least one image"):
        data.side_by_side([])
    calls = []
    ratio = runtime.time_ratio(lambda: calls.append("f"), lambda: calls.append("r"), repeat=2, reference_repeat=3)
    assert ratio > 0 and calls.count("f") == 3 and calls.count("r") == 4


def test_eq4_normalisations_and_the_scale_the_penalty_cannot_see():
    torch.manual_seed(0)
    basis, w = torch.rand(2, 5, 4, 4) + 0.1, torch.rand(2, 5)
    for norm in gfi.NORMALISATIONS:
        m = gfi.mask_from_weights(w, basis, (12, 12), norm)
        # scaling every weight leaves the mask as it is, while the L2 penalty quarters at s = 1/2
        assert torch.allclose(gfi.mask_from_weights(0.5 * w, basis, (12, 12), norm), m, atol=1e-6)
    assert torch.allclose(gfi._penalty(0.5 * w, "l2"), gfi._penalty(w, "l2") / 4)
    # by hand: the upsampled weighted sum, divided by its maximum, or shifted by its minimum first
    raw = torch.nn.functional.interpolate((w[:, :, None, None] * basis).sum(1, keepdim=True), size=(12, 12),
                                          mode="bilinear", align_corners=False)[:, 0]
    hi, lo = raw.flatten(1).amax(1)[:, None, None], raw.flatten(1).amin(1)[:, None, None]
    assert torch.allclose(gfi.mask_from_weights(w, basis, (12, 12), "max"), raw / hi, atol=1e-6)
    mm = gfi.mask_from_weights(w, basis, (12, 12), "minmax")
    assert torch.allclose(mm, (raw - lo) / hi, atol=1e-6)
    assert torch.allclose(mm.flatten(1).amin(1), torch.zeros(2), atol=1e-6)  # reaches 0 (m / max does not here)
    assert (gfi.mask_from_weights(w, basis, (12, 12), "max").flatten(1).amin(1) > 0.05).all()
    with pytest.raises(ValueError, match="normalise"):
        gfi.mask_from_weights(w, basis, (12, 12), "softmax")


class _Recorder(torch.nn.Module):
    """A linear classifier that keeps a copy of every batch it sees."""

    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU())
        self.head = torch.nn.Linear(4, 3)
        self.seen = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return self.head(self.features(x).mean((2, 3)))


@pytest.mark.parametrize("settings", [{}, gfi.AUTHORS_CODE])
def test_stage_switch_and_which_image_is_kept(settings):
    torch.manual_seed(0)
    model = _Recorder().eval()
    x = torch.randn(3, 3, 16, 16)
    # lr=0 keeps every weight at its initial value, so each step's mask is known in advance
    gfi.explain(model, x, [0, 1, 2], layer="features.1", iterations=15, bg="noise", lr=0.0, **settings)
    s1 = settings.get("stage1_iterations", 10)
    batches = model.seen[1:]  # the first call records the reference activations
    assert [len(b) for b in batches] == [3] * s1 + [6] * (15 - s1)  # stage 1: Phi(x, m); stage 2: kept, removed
    with torch.no_grad():
        m0 = gfi.mask_from_weights(torch.full((3, 4), 0.1), model.features(x), (16, 16), settings.get("normalise", "max"))
    p = occlusion.background(x, "noise")
    assert m0.std() > 0.05  # a mask that is not uniform, so kept and removed differ
    for b in batches[:s1]:
        assert torch.allclose(b, occlusion.blend(x, m0, p), atol=1e-6)
    for b in batches[s1:]:
        assert torch.allclose(b[:3], occlusion.blend(x, m0, p), atol=1e-6)  # the mask kept: Eq. 3's -s_c term
        assert torch.allclose(b[3:], occlusion.blend(x, 1 - m0, p), atol=1e-6)  # the mask removed: its +lambda s_c term
