"""Activation Matching: each loss term on constructed masks, the straight-through mask, a short optimisation."""

import numpy as np
import pytest
import torch
from torch import nn

from xaihelpers import actmatch, benchmark_models, models, occlusion
from xaihelpers.hooks import record


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    return benchmark_models.BenchmarkCNN("relu").eval()


def test_mask_network_shapes_and_errors():
    net = actmatch.MaskNet((4, 8), 16)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 1, 32, 32)
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.randn(1, 3, 30, 32))


def test_straight_through_mask_is_binary_with_a_gradient():
    z = torch.randn(1, 1, 8, 8, requires_grad=True)
    m = actmatch.binarise(z)
    assert set(m.unique().tolist()) <= {0.0, 1.0}
    m.sum().backward()
    assert z.grad.abs().sum() > 0


def test_all_ones_mask_has_zero_activation_loss_and_full_area(cnn):
    x = torch.randn(2, 3, 64, 64)
    layers = actmatch.default_layers(cnn, logits=False)
    with record(cnn, list(layers)) as rec:
        cnn(x)
    acts_x = dict(rec.activations)
    with record(cnn, list(layers)) as rec:
        cnn(actmatch.apply_mask(x, torch.ones(2, 1, 64, 64)))
    for d in actmatch.DISTANCES:
        assert actmatch.activation_loss(acts_x, rec.activations, layers, d) == pytest.approx(0.0, abs=1e-5)
    ones = torch.ones(2, 1, 64, 64)
    assert actmatch.area_loss(ones) == 1 and actmatch.bin_loss(ones) == 0 and actmatch.tv_loss(ones) == 0
    with record(cnn, list(layers)) as rec:
        cnn(actmatch.apply_mask(x, torch.zeros(2, 1, 64, 64)))
    assert actmatch.activation_loss(acts_x, rec.activations, layers) > 0.01


def test_checkerboard_has_high_total_variation_and_half_mask_bin():
    r = torch.arange(16)
    board = ((r[:, None] + r[None]) % 2).float()[None, None]
    half = torch.zeros(1, 1, 16, 16)
    half[..., :8] = 1
    assert actmatch.tv_loss(board) == pytest.approx(0.5)  # every straight neighbour differs, no diagonal one
    assert actmatch.tv_loss(half) < 0.1
    assert actmatch.bin_loss(torch.full((1, 1, 4, 4), 0.5)) == pytest.approx(0.25)


def test_kl_and_ce():
    a = torch.tensor([[2.0, 0.0, -1.0]])
    assert actmatch.kl_loss(a, a) == pytest.approx(0.0, abs=1e-6)
    assert actmatch.kl_loss(a, -a) > 0
    t = torch.tensor([0])
    assert actmatch.ce_loss(a, torch.tensor([[10.0, 0, 0]]), t) < actmatch.ce_loss(a, torch.tensor([[0.0, 10, 0]]), t)


def test_robustness_term_trains_the_mask_network_only_with_gradient(cnn):
    x = torch.randn(1, 3, 64, 64)
    t = torch.tensor([3])
    for gradient in (True, False):
        net = actmatch.MaskNet((4, 8), 16)
        loss = actmatch.robustness_loss(cnn, x, actmatch.binarise(net(x)), t, gradient=gradient, seed=0)
        grads = torch.autograd.grad(loss, list(net.parameters()), allow_unused=True)
        total = sum(g.abs().sum() for g in grads if g is not None)
        # with the straight-through mask the term trains the mask network; detached (the reference notebook) it cannot
        assert (total > 0) if gradient else (total == 0)


def test_short_optimisation_keeps_the_label_and_shrinks_the_area():
    model, prep, _ = models.load_model("fmnist_cnn_relu", device="cpu")
    from xaihelpers import benchmark

    test = benchmark.cluttered_fashion_mnist("test", n=1, verbose=False)
    x = prep.normalize(test.images)
    start = actmatch.train(model, x, steps=1, lr=0.0, widths=(8, 16), bottleneck=32, verbose=False)
    out = actmatch.train(model, x, steps=60, lr=1e-2, widths=(8, 16), bottleneck=32, verbose=False)
    assert out.kept.all()
    assert out.area[0] < start.area[0] - 0.1
    assert out.masks.shape == (1, 64, 64) and set(out.masks.unique().tolist()) <= {0.0, 1.0}
    assert len(out.history[0]) == 60 and {"act", "kl", "ce", "area", "bin", "tv", "rob"} <= set(out.history[0][0])
    with pytest.raises(ValueError, match="unknown loss weights"):
        actmatch.train(model, x, steps=1, sparsity=3)


def test_amortised_and_circuit(cnn):
    x = torch.randn(6, 3, 64, 64)
    net, hist = actmatch.train_amortised(cnn, x, epochs=1, batch_size=3, widths=(4, 8), bottleneck=16, verbose=False)
    assert len(hist) == 2
    out = actmatch.apply_amortised(net, cnn, x)
    assert torch.equal(actmatch.amortised_masks(net, x), out.masks)  # the explanation is the mask network's pass alone
    assert out.masks.shape == (6, 64, 64) and np.all((out.area >= 0) & (out.area <= 1))
    layers = list(actmatch.default_layers(cnn, logits=False))
    circ = actmatch.circuit(cnn, x[:1], layers, target=2, k=3)
    assert all(len(v) == 3 for v in circ["nodes"].values())
    assert len(circ["edges"]) == 9 * (len(layers) - 1) + 3 and all(w >= 0 for *_, w in circ["edges"])
    assert not any(p.requires_grad is False for p in cnn.parameters())  # the flags are restored


def test_torchvision_resnet18_layers_and_a_step():
    import torchvision

    torch.manual_seed(0)
    m = torchvision.models.resnet18(num_classes=10).eval()
    assert actmatch.default_layers(m, logits=False) == {"relu": 1.0, "layer1": 2.0, "layer2": 2.0, "layer3": 4.0,
                                                         "layer4": 8.0}
    # the authors' recipe matches the logits too, by default
    assert actmatch.default_layers(m) == {**actmatch.default_layers(m, logits=False), actmatch.LOGITS: actmatch.LOGITS_WEIGHT}
    out = actmatch.train(m, torch.randn(1, 3, 64, 64), steps=2, widths=(4, 8), bottleneck=8, verbose=False)
    assert out.masks.shape == (1, 64, 64) and len(out.history[0]) == 2
    assert all(r.inplace for r in m.modules() if isinstance(r, torch.nn.ReLU))  # torchvision's in-place ReLUs restored


def test_mask_network_does_not_depend_on_the_thread_count():
    """Logits and gradients agree between one and two threads within float32 rounding.

    The mask network is built so that no reduction is split over threads (its head is
    a matrix product, see ``actmatch.MaskNet``); where that holds the results are the
    same bit for bit. The bound below is float32's unit roundoff (6e-8) times the
    longest sum in the network (a 3x3 convolution over 16 channels: 144 products),
    about 1e-5 of the largest value: tight enough that a thread-split reduction of a
    whole tensor (which differs by 1e-4 of its value and more) fails it, loose
    enough not to fail on a machine whose BLAS orders a sum differently."""
    torch.manual_seed(0)
    net = actmatch.MaskNet(widths=(8, 16), bottleneck=16)
    x = torch.randn(1, 3, 32, 32)
    before = torch.get_num_threads()
    out = {}
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            logits = net(x)
            grads = torch.autograd.grad((logits ** 2).mean(), list(net.parameters()))
            out[n] = [logits.detach(), *grads]
    finally:
        torch.set_num_threads(before)
    for a, b in zip(out[1], out[2]):
        assert (a - b).abs().max() <= 1e-5 * a.abs().max()
    # the head computes the 1x1 convolution it holds, on the last decoder block's features
    feats = {}
    net.dec[-1].register_forward_hook(lambda m, i, o: feats.setdefault("x", o))
    logits = net(x)
    assert torch.allclose(logits, net.head(feats["x"]), atol=1e-5)  # float32 sums of 8 products


def test_circuit_edge_weight_is_weight_times_activation_on_a_linear_layer():
    """Between two layers joined by a 1x1 convolution (a linear map over channels) the edge
    weight is |W_ji| times the source channel's mean absolute activation."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.ReLU(), nn.Conv2d(5, 4, 1, bias=True),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()
    x = torch.randn(1, 3, 8, 8)
    circ = actmatch.circuit(model, x, ["1", "2"], target=1, k=5)
    with torch.no_grad():
        a = model[1](model[0](x))[0]  # (5, 8, 8)
    w = model[2].weight[:, :, 0, 0].detach()  # (4, 5)
    edges = {(s[1], d[1]): v for s, d, v in circ["edges"] if d[0] == "2"}
    assert len(edges) == 5 * 4
    for (i, j), v in edges.items():
        assert v == pytest.approx(abs(float(w[j, i])) * float(a[i].abs().mean()), rel=1e-5, abs=1e-8)
    with torch.no_grad():
        pooled = model[3](model[2](a[None]))[0, :, 0, 0]
    for s, d, v in circ["edges"]:
        if d[0] == "class":
            assert v == pytest.approx(abs(float(model[5].weight[1, s[1]])) * abs(float(pooled[s[1]])), rel=1e-5)


def test_necessity_on_a_hand_built_classifier():
    """A classifier that reads only the left half: a mask on the left half is sufficient and
    necessary; one on the right half is neither."""
    class LeftHalf(nn.Module):
        def forward(self, x):
            left = x[..., : x.shape[-1] // 2].mean((2, 3))  # (N, 3)
            return torch.stack([10 * left[:, 0] - 1, torch.zeros_like(left[:, 0])], 1)  # class 1 when the left is blank

    x = torch.zeros(2, 3, 8, 8)
    x[..., :4] = 1.0  # class 0 from the left half
    left = torch.zeros(2, 8, 8)
    left[..., :4] = 1
    res = actmatch.necessity(LeftHalf(), x, left)
    assert res["kept"].all() and res["lost"].all()
    assert np.allclose(res["area"], 0.5)
    right = 1 - left
    res = actmatch.necessity(LeftHalf(), x, right, target=0)
    assert not res["kept"].any() and not res["lost"].any()
    # hiding the left half leaves 0 there: logits (-1, 0), p_0 = 1 / (1 + e)
    assert np.allclose(res["p_kept"], 1 / (1 + np.e))
    with pytest.raises(ValueError, match="binary"):
        actmatch.necessity(LeftHalf(), x, left * 0.5)
    # the report: the left mask is sufficient, necessary and survives any background (the right half is ignored)
    rep = actmatch.mask_report(LeftHalf(), x, left, [0, 0], torch.randn(3, 3, 8, 8))
    assert rep["sufficient"] == rep["necessary"] == rep["survives: backgrounds"] == rep["survives: own blur"] == 1.0
    assert rep["area"] == pytest.approx(0.5) and rep["sufficient se"] == 0
    fills = occlusion.training_backgrounds(2, (8, 8))
    rep = actmatch.mask_report(LeftHalf(), x, right, [0, 0], torch.zeros(3, 3, 8, 8), training_fills=fills)
    assert rep["sufficient"] == rep["necessary"] == rep["survives: backgrounds"] == 0.0
    # planted on a training fill, the right-half mask leaves the fill's left half to the classifier:
    # class 0 exactly when 10 * mean(fill's channel 0 on the left) - 1 > 0
    expected = np.mean([float(10 * b[0, :, :4].mean() - 1 > 0) for b in fills])
    assert rep["survives: training fills"] == pytest.approx(expected)


def test_the_logits_can_join_the_matched_layers(cnn):
    """With layers={LOGITS: 1} the activation term is the MSE between the logits of e and of x."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64)
    mask_logits = torch.randn(2, 1, 64, 64)
    acts_x = actmatch._image_targets(cnn, x, {actmatch.LOGITS: 1.0})
    _, terms = actmatch.objective(cnn, x, mask_logits, torch.tensor([0, 1]), acts_x, {actmatch.LOGITS: 1.0},
                                  {"act": 1.0})
    with torch.no_grad():
        m = (torch.sigmoid(mask_logits) > 0.5).float()
        expected = torch.nn.functional.mse_loss(cnn(x * m), cnn(x)).item()
    assert terms["act"] == pytest.approx(expected, rel=1e-5)
    layers = {**actmatch.default_layers(cnn), actmatch.LOGITS: 8.0}
    out = actmatch.train(cnn, x[:1], steps=2, widths=(4, 8), bottleneck=8, layers=layers, verbose=False)
    assert out.masks.shape == (1, 64, 64)


def test_tv_is_the_mean_over_the_eight_neighbours_by_a_literal_loop():
    """L_tv = mean over the 8 neighbour offsets of the mean |m_p - m_q| over the pairs inside the image."""
    g = torch.Generator().manual_seed(0)
    m = torch.rand(1, 1, 7, 9, generator=g)
    a = m[0, 0].tolist()
    h, w = len(a), len(a[0])
    per_offset = []
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy == dx == 0:
                continue
            diffs = [abs(a[y][x] - a[y + dy][x + dx]) for y in range(h) for x in range(w)
                     if 0 <= y + dy < h and 0 <= x + dx < w]
            per_offset.append(sum(diffs) / len(diffs))
    assert actmatch.tv_loss(m).item() == pytest.approx(sum(per_offset) / 8, rel=1e-6)


def test_tv_of_one_shape_falls_with_the_resolution():
    """The same disc (4 % of the image) at 64 and at 224 px: TV scales as 1 / side, the area not at all."""
    def disc(side):
        r = torch.arange(side) - (side - 1) / 2
        return ((r[:, None] ** 2 + r[None] ** 2) <= 0.04 * side * side / np.pi).float()[None, None]

    small, large = disc(64), disc(224)
    assert actmatch.area_loss(small).item() == pytest.approx(actmatch.area_loss(large).item(), rel=0.05)
    ratio = actmatch.tv_loss(large).item() / actmatch.tv_loss(small).item()
    assert ratio == pytest.approx(64 / 224, rel=0.1)


def test_training_backgrounds_are_the_robustness_terms_fills():
    bg = occlusion.training_backgrounds(4, (8, 8), seed=1)
    assert bg.shape == (12, 3, 8, 8)
    assert torch.equal(bg[:4], torch.zeros(4, 3, 8, 8))
    assert abs(bg[4:8].mean()) < 0.3 and 0.7 < bg[4:8].std() < 1.3  # Gaussian
    assert bg[8:].min() >= -2 and bg[8:].max() <= 2 and bg[8:].std() > 0.9  # uniform on [-2, 2]: std 1.15
    assert torch.equal(bg, occlusion.training_backgrounds(4, (8, 8), seed=1))


def test_circuit_ignores_the_logits_entry(cnn):
    x = torch.randn(1, 3, 64, 64)
    with_logits = actmatch.circuit(cnn, x, list(actmatch.default_layers(cnn)), target=1, k=2)
    without = actmatch.circuit(cnn, x, list(actmatch.default_layers(cnn, logits=False)), target=1, k=2)
    assert with_logits["nodes"].keys() == without["nodes"].keys() and actmatch.LOGITS not in without["nodes"]


def test_fill_reaches_the_objective_and_the_verdict(cnn):
    """With the image itself as the fill, every explanation is the image: the activation term is 0 at
    every step and the explanation's probability is the image's."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64)
    out = actmatch.train(cnn, x, steps=3, widths=(4, 8), bottleneck=8, fill=x, verbose=False)
    assert all(h["act"] == pytest.approx(0.0, abs=1e-6) for hist in out.history for h in hist)
    assert np.allclose(out.p_explanation, out.p_image, atol=1e-6)
    plain = actmatch.train(cnn, x, steps=3, widths=(4, 8), bottleneck=8, verbose=False)
    assert plain.history[0][0]["act"] > 1e-3
    with pytest.raises(ValueError, match="fill"):
        actmatch.train(cnn, x, steps=1, fill=torch.zeros(3, 3, 64, 64), verbose=False)


def test_robustness_table_by_hand(cnn):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64)
    e = actmatch.train(cnn, x, steps=12, widths=(4, 8), bottleneck=8, verbose=False)
    bg = occlusion.training_backgrounds(1, (64, 64))
    tab = actmatch.robustness_table(cnn, x, {"a": e}, bg[:1], bg)
    hist = e.history
    ratio = np.mean([np.mean([h["rob"] for h in hist[i][-10:]]) / np.mean([h["rob"] for h in hist[i][:10]]) for i in range(2)])
    assert tab.loc["a", "robustness term, last 10 steps / first 10"] == pytest.approx(ratio)
    rep = actmatch.mask_report(cnn, x, e.masks, e.target, bg[:1], training_fills=bg)
    assert tab.loc["a", "survives: unseen backgrounds"] == rep["survives: backgrounds"]
    assert tab.loc["a", "survives: training fills se"] == rep["survives: training fills se"]


# ---------------------------------------------------------------- matched controls (issue 32, finding 8)

def _masks_of_many_shapes():
    g = torch.Generator().manual_seed(3)
    m = torch.zeros(6, 24, 20)
    m[0, 3:11, 4:9] = 1  # a rectangle
    m[1] = (torch.rand(24, 20, generator=g) < 0.2).float()  # scattered
    m[2, :, :] = 1  # everything
    # m[3] stays empty
    m[4, 0, 0] = 1  # one pixel
    m[5, 2:22, 1:19] = 1  # a large block (75 %)
    return m


@pytest.mark.parametrize("kind", actmatch.CONTROL_KINDS)
def test_controls_have_exactly_each_masks_area(kind):
    """Finding 8: every control keeps exactly its own mask's pixel count, image by image (the old necessity
    table put masks of 0.885 beside masks of 0.398)."""
    m = _masks_of_many_shapes()
    c = actmatch.matched_controls(m, kind, seed=1)
    assert c.shape == m.shape and set(c.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(c.flatten(1).sum(1), m.flatten(1).sum(1))
    assert torch.equal(c, actmatch.matched_controls(m.numpy(), kind, seed=1))  # the seed decides, arrays accepted
    if kind != "shifted":  # the controls do not know the mask's place: a new seed moves them
        assert not torch.equal(actmatch.matched_controls(m, kind, seed=2)[0], c[0])


def test_blob_controls_are_one_connected_region():
    from scipy import ndimage

    m = _masks_of_many_shapes()
    blobs = actmatch.matched_controls(m, "blob", seed=0)
    for i in range(len(m)):
        _, n_parts = ndimage.label(blobs[i].numpy())  # 4-connectivity
        assert n_parts == (1 if m[i].sum() > 0 else 0), i
    # scattered pixels of the same area are not one region (the control the blob adds to)
    _, n_scattered = ndimage.label(actmatch.matched_controls(m, "scattered", seed=0)[1].numpy())
    assert n_scattered > 1


def test_shifted_control_is_the_mask_moved_away():
    m = _masks_of_many_shapes()
    s = actmatch.matched_controls(m, "shifted", seed=0)
    # the rectangle keeps its shape (some roll of the mask) and leaves its place
    rolls = [torch.roll(m[0], (dy, dx), (0, 1)) for dy in range(24) for dx in range(20)]
    assert any(torch.equal(s[0], r) for r in rolls)
    assert (s[0] * m[0]).sum() == 0
    with pytest.raises(ValueError, match="kind"):
        actmatch.matched_controls(m, "ring")
    with pytest.raises(ValueError, match="binary"):
        actmatch.matched_controls(m * 0.5, "blob")
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        actmatch.matched_controls(m[0], "blob")


def test_matched_comparison_keeps_every_row_at_the_masks_area(cnn):
    """Finding 8: no row of the necessity comparison may have another area than the mask it controls for;
    the gaps are paired (row minus mask, on the same images)."""
    from xaihelpers import stats

    torch.manual_seed(0)
    x = torch.randn(4, 3, 64, 64)
    m = torch.zeros(4, 64, 64)
    m[:, 10:30, 20:40] = 1
    bigger = m.clone()
    bigger[:, :5] = 1
    with pytest.raises(ValueError, match="exactly the area"):
        actmatch.matched_comparison(cnn, x, m, [0, 1, 2, 3], others={"bigger": bigger})
    tab, per = actmatch.matched_comparison(cnn, x, m, [0, 1, 2, 3], others={"same": m.clone()}, name="object")
    assert list(tab.index) == ["object", "same", "scattered (object's area)", "blob (object's area)", "shifted (object's area)"]
    assert np.allclose(tab["area"].astype(float), 400 / 64 ** 2)
    assert tab.loc["same", "p hidden: row - mask"] == pytest.approx(0.0, abs=1e-7)
    p = stats.paired(per["blob (object's area)"]["p hidden"], per["object"]["p hidden"])
    assert tab.loc["blob (object's area)", "p hidden: row - mask"] == pytest.approx(p.diff)
    assert tab.loc["blob (object's area)", "p hidden: paired se"] == pytest.approx(p.se)


class _PatchClassifier(nn.Module):
    """Class 0's logit is the sum of channel 0 over the top-left 2 x 2 patch; class 1's is 2.5."""

    def forward(self, x):
        l0 = x[:, 0, :2, :2].sum((1, 2))
        return torch.stack([l0, torch.full_like(l0, 2.5)], 1)


def test_area_curve_keeps_the_label_from_the_smallest_sufficient_share_by_hand():
    # bug caught: keeping the lowest-ranked pixels, or an area that is not the share of the image kept
    x = torch.ones(2, 3, 8, 8)  # class 0 wins on the whole image: 4 > 2.5
    inside = torch.zeros(8, 8)
    inside[:2, :2] = torch.tensor([[4.0, 3.0], [2.0, 1.0]])
    scores = torch.stack([inside, -inside])  # image 0 ranks the patch first, image 1 last
    areas = [k / 64 for k in (1, 2, 3, 4)]
    curve = actmatch.area_curve(_PatchClassifier(), x, scores, target=0, areas=areas)
    assert len(curve) == 8 and np.allclose(sorted(curve["area"].unique()), areas)
    first = curve[curve["image"] == 0].sort_values("area")
    assert first["kept"].tolist() == [False, False, True, True]  # 1, 2 patch pixels: 1, 2 < 2.5; 3, 4: > 2.5
    p3 = np.exp(3) / (np.exp(3) + np.exp(2.5))  # three patch pixels kept, the rest painted 0
    assert abs(first["p_kept"].iloc[2] - p3) < 1e-6
    smallest = actmatch.smallest_kept_area(curve)
    assert abs(smallest[0] - 3 / 64) < 1e-9 and np.isnan(smallest[1])  # image 1 never keeps a patch pixel
    with pytest.raises(ValueError):
        actmatch.area_curve(_PatchClassifier(), x, scores, areas=[0.0])


def test_snapshots_are_the_masks_a_shorter_run_ends_with(cnn):
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    long = actmatch.train(cnn, x, steps=6, lr=1e-2, widths=(4, 8), bottleneck=8, verbose=False, snapshots=(3, 6))
    short = actmatch.train(cnn, x, steps=3, lr=1e-2, widths=(4, 8), bottleneck=8, verbose=False)
    assert sorted(long.snapshots) == [3, 6] and long.snapshots[3].shape == (2, 64, 64)
    torch.testing.assert_close(long.snapshots[3], short.soft)
    torch.testing.assert_close(long.snapshots[6], long.soft)
    assert (long.snapshots[3] - long.snapshots[6]).abs().max() > 1e-4  # training went on between them
    with pytest.raises(ValueError, match="snapshot"):
        actmatch.train(cnn, x, steps=3, verbose=False, snapshots=(4,))
