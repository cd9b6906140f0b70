"""ConvAD: the all-ones theorem, no influence of masked pixels, the position attribution."""

import warnings

import pytest
import torch
import torchvision
from torch import nn

from xaihelpers import benchmark_models, convad, models, occlusion


def _archs():
    torch.manual_seed(0)
    return {
        "benchmark_relu": benchmark_models.BenchmarkCNN("relu"),
        "benchmark_gelu": benchmark_models.BenchmarkCNN("gelu"),
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
    for how in ("convad",) + occlusion.MASKING:
        out = convad.predict_masked(m, x, masks, how=how, batch_size=3)
        assert out.shape == (4, 10) and torch.allclose(out[0], ref[0], atol=1e-5), how
    for value in occlusion.MASKING:
        painted = occlusion.paint(x.expand(4, -1, -1, -1), masks, value)
        assert torch.equal(painted[..., masks[1] == 1][1], x[0][..., masks[1] == 1])  # visible pixels kept
    assert occlusion.paint(x, masks[1:2], "max")[..., 30, 30].eq(x.max()).all()
    with pytest.raises(ValueError, match="masking value"):
        occlusion.paint(x, masks[:1], "pink")
    with pytest.raises(ValueError, match="one image"):
        convad.predict_masked(m, x.expand(2, -1, -1, -1), masks)


# --- exact fractions, the rules, exactness, concatenation, pooling -------------------------


def _literal_fraction(phi: torch.Tensor, k: int, s: int, p: int, d: int) -> torch.Tensor:
    """Phi_i by a literal loop over windows: padding counts as visible (1)."""
    h, w = phi.shape
    padded = torch.ones(h + 2 * p, w + 2 * p, dtype=torch.float64)
    padded[p : p + h, p : p + w] = phi.double()
    ho, wo = (h + 2 * p - d * (k - 1) - 1) // s + 1, (w + 2 * p - d * (k - 1) - 1) // s + 1
    out = torch.empty(ho, wo, dtype=torch.float64)
    for i in range(ho):
        for j in range(wo):
            total = 0.0
            for a in range(k):
                for b in range(k):
                    total += float(padded[i * s + a * d, j * s + b * d])
            out[i, j] = total / (k * k)
    return out


@pytest.mark.parametrize("k,s,p,d", [(3, 1, 1, 1), (3, 2, 1, 2), (5, 2, 2, 1), (2, 2, 0, 1)])
def test_position_attribution_is_a_literal_window_mean_in_float64(k, s, p, d):
    g = torch.Generator().manual_seed(k * 100 + s * 10 + d)
    mask = (torch.rand(1, 1, 13, 11, generator=g) > 0.4).float()
    conv = nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d)
    phi = convad.position_attribution(mask, conv)
    assert phi.dtype == torch.float64
    ref = _literal_fraction(mask[0, 0], k, s, p, d)
    assert phi.shape[-2:] == ref.shape
    # counts of visible inputs are integers: Phi * k^2 recovers them to float64 rounding
    assert torch.allclose(phi[0, 0] * k * k, ref * k * k, atol=1e-12, rtol=0)
    pool = nn.MaxPool2d(k, stride=s, padding=min(p, k // 2), dilation=d)
    assert torch.allclose(convad.position_attribution(mask, pool)[0, 0], _literal_fraction(mask[0, 0], k, s, min(p, k // 2), d),
                          atol=1e-12, rtol=0)


def test_fractions_do_not_depend_on_tf32():
    ones = torch.ones(2, 1, 32, 32)
    conv = nn.Conv2d(1, 1, 3, padding=1)
    flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        out = {}
        for tf32 in (False, True):
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
            out[tf32] = convad.position_attribution(ones, conv)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags
    # an all-ones window is 9 / 9, exactly 1, with the flags on or off
    assert bool((out[False] == 1).all()) and bool((out[True] == 1).all())
    # what a float32 kernel of 1/9 gives under TF32 (emulated: a 10-bit mantissa): below strict's threshold
    ninth = torch.tensor(1 / 9, dtype=torch.float32)
    tf32_ninth = (ninth.view(torch.int32) & ~((1 << 13) - 1)).view(torch.float32)
    assert (9 * tf32_ninth).item() < 1 - 1e-6
    assert bool(convad.keep(out[True], "strict").all())


def test_rules_on_hand_worked_fractions():
    phi = torch.tensor([0.0, 1e-12, 0.25, 0.5, 0.75, 1.0], dtype=torch.float64)
    assert convad.keep(phi, "lenient").tolist() == [False, True, True, True, True, True]
    assert convad.keep(phi, "majority").tolist() == [False, False, False, True, True, True]
    assert convad.keep(phi, "strict").tolist() == [False, False, False, False, False, True]
    # Phi follows the formula (mean of the previous Phi), not the previous Phi times its decision:
    # a 2x2 window over Phi = (1, 1, 0.25, 0.25) is 0.625 under every rule (majority's Phi x decision: 0.5)
    seq = nn.Sequential(nn.Conv2d(3, 1, 2, stride=2), nn.Conv2d(1, 1, 2, stride=2)).eval()
    mask = torch.tensor([[[1.0, 1, 1, 1], [1, 1, 1, 1], [1, 0, 1, 0], [0, 0, 0, 0]]])
    for rule in convad.RULES:
        ad = convad.wrap(seq, rule)
        with torch.no_grad():
            ad(torch.randn(1, 3, 4, 4), mask)
        assert torch.allclose(ad.fractions[0][0, 0], torch.tensor([[1.0, 1.0], [0.25, 0.25]], dtype=torch.float64))
        assert ad.fractions[1].item() == pytest.approx(0.625, abs=1e-12), rule


def _plain_cnn() -> nn.Sequential:
    torch.manual_seed(1)
    return _randomise_bn(nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 6, 3, stride=2, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Conv2d(6, 8, 5, padding=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4)))


def _inputs_of_every_layer(model: nn.Module, run) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []
    handles = [m.register_forward_pre_hook(lambda mod, inp: seen.append(inp[0].detach().clone()))
               for m in model if not isinstance(m, (nn.Flatten, nn.Linear))]
    try:
        with torch.no_grad():
            out = run()
    finally:
        for h in handles:
            h.remove()
    return seen + [out]


@pytest.mark.parametrize("rule", convad.RULES)
def test_every_layer_is_the_original_layer_on_the_deactivated_input(rule):
    """Replay layer by layer: each layer of the original network applied to the previous
    (deactivated) activations, then the rule's decision on a literal Phi; kept values
    agree and switched-off positions are exactly 0."""
    m = _plain_cnn()
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 3, 24, 24, generator=g)
    mask = torch.ones(1, 24, 24)
    mask[:, 5:15, 3:13] = 0
    mask[:, 18:, 18:] = 0
    ad = convad.wrap(m, rule)
    got = _inputs_of_every_layer(m, lambda: ad(x, mask))
    a, phi, ref = x * mask, mask[0].double(), []
    for layer in m:
        if isinstance(layer, (nn.AdaptiveAvgPool2d, nn.Flatten, nn.Linear)):
            ref.append(a)
            a = layer(a)
            continue
        ref.append(a)
        with torch.no_grad():
            a = layer(a)
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
            k, s, p, d = convad._window(layer)
            phi = _literal_fraction(phi, k[0], s[0], p[0], d[0])
        on = {"strict": phi >= 1 - 1e-9, "majority": phi >= 0.5 - 1e-9, "lenient": phi > 0}[rule]
        a = a * on.to(a.dtype)
    ref = ref[: len(got) - 1] + [a]
    assert len(got) == len(ref)
    for g_, r_ in zip(got, ref):
        assert g_.shape == r_.shape
        assert torch.allclose(g_, r_, atol=1e-5, rtol=1e-5)
        assert torch.equal(g_[..., (r_ == 0).all(0).all(0)], r_[..., (r_ == 0).all(0).all(0)])  # switched off: exactly 0


def test_strict_kept_positions_equal_the_plain_network_on_any_fill():
    """Under strict a kept position's receptive field is all visible: its activation is the
    plain network's on the zero-painted input, and on the noise-painted one."""
    m = _randomise_bn(benchmark_models.BenchmarkCNN("relu")).eval()
    x = torch.randn(1, 3, 64, 64)
    mask = torch.ones(1, 64, 64)
    mask[:, :, :6] = 0  # a thin hidden strip: deep positions far from it stay on
    leaves = [mod for mod in m.modules() if not list(mod.children()) and isinstance(mod, (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d))]

    def record(run):
        seen = []
        # ConvAD's hooks come first (prepend), so these see the deactivated outputs
        hs = [mod.register_forward_hook(lambda mod, inp, out: seen.append(out.detach().clone())) for mod in leaves]
        try:
            with torch.no_grad():
                run()
        finally:
            for h in hs:
                h.remove()
        return seen

    ad = convad.wrap(m, "strict")
    with pytest.warns(UserWarning, match="receptive field"):
        got = record(lambda: ad(x, mask))
    zero = record(lambda: m(x * mask))
    noise = record(lambda: m(x * mask + (1 - mask) * 5 * torch.randn_like(x)))
    kept_somewhere = 0
    for g_, z_, n_ in zip(got, zero, noise):
        on = g_ != 0
        kept_somewhere += int(on.any())
        assert torch.allclose(g_[on], z_[on], atol=1e-5) and torch.allclose(g_[on], n_[on], atol=1e-4)
    assert kept_somewhere > len(got) // 2


def test_strict_switches_the_benchmark_cnn_off_and_lenient_keeps_the_visible_part():
    m = _randomise_bn(benchmark_models.BenchmarkCNN("relu")).eval()
    x = torch.randn(1, 3, 64, 64)
    for side in (4, 16, 32):
        mask = torch.ones(1, 64, 64)
        lo = 32 - side // 2
        mask[:, lo : lo + side, lo : lo + side] = 0
        shares = {}
        for rule in convad.RULES:
            ad = convad.wrap(m, rule)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with torch.no_grad():
                    ad(x, mask)
            shares[rule] = ad.active_shares()
        assert shares["strict"][-1] == 0  # the issue: the whole last layer off for a hidden patch
        visible = 1 - side * side / 64 ** 2
        assert all(s >= visible - 1e-9 for s in shares["lenient"])  # nothing that saw visible input is lost
        assert all(a >= b for a, b in zip(shares["lenient"], shares["majority"]))
        assert all(a >= b for a, b in zip(shares["majority"], shares["strict"]))


def _two_branch():
    class TwoBranch(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 4, 5, padding=2)
            self.bn, self.c = nn.BatchNorm2d(8), nn.Conv2d(8, 2, 1)
            self.pool, self.flat, self.fc = nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 3)

        def forward(self, x):
            return self.fc(self.flat(self.pool(self.c(self.bn(torch.cat([self.a(x), self.b(x)], 1))))))

    torch.manual_seed(2)
    return _randomise_bn(TwoBranch())


@pytest.mark.parametrize("rule", convad.RULES)
def test_concatenation_carries_each_inputs_mask_on_its_channels(rule):
    m = _two_branch()
    x = torch.randn(1, 3, 12, 12)
    mask = (torch.rand(1, 12, 12, generator=torch.Generator().manual_seed(0)) > 0.45).float()
    ad = convad.wrap(m, rule)
    seen = []
    h = m.c.register_forward_pre_hook(lambda mod, inp: seen.append(inp[0].detach().clone()))
    try:
        with torch.no_grad():
            ad(x, mask)
    finally:
        h.remove()
    phi_a, phi_b, phi_c = ad.fractions
    # the 1x1 convolution after the concatenation reads 4 channels of each branch
    assert torch.allclose(phi_c, (phi_a + phi_b) / 2, atol=1e-12)
    on_a, on_b = convad.keep(phi_a, rule)[0, 0], convad.keep(phi_b, rule)[0, 0]
    bn_out = seen[0][0]
    assert bool((bn_out[:4, ~on_a] == 0).all()) and bool((bn_out[4:, ~on_b] == 0).all())
    if rule != "lenient":
        assert bool((on_a & ~on_b).any())  # the branches' masks do differ here
        assert bool((bn_out[:4, on_a & ~on_b] != 0).any())  # branch a's channels stay on where b's are off


def test_densenet121_random_weights():
    torch.manual_seed(0)
    m = _randomise_bn(torchvision.models.densenet121(weights=None, num_classes=10))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = m(x)
        for rule in convad.RULES:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                assert torch.allclose(convad.wrap(m, rule)(x, torch.ones(2, 64, 64)), ref, atol=1e-4, rtol=1e-4), rule
        mask = torch.ones(2, 64, 64)
        mask[:, 8:40, 10:50] = 0
        x2 = x + (1 - mask[:, None]) * 4 * torch.randn_like(x)
        ad = convad.wrap(m, "lenient")
        assert torch.allclose(ad(x, mask), ad(x2, mask), atol=1e-4)
        # fractions in execution order: conv0, pool0, denselayer1.conv1, denselayer1.conv2, denselayer2.conv1;
        # denselayer2's 1x1 convolution reads pool0's 64 channels and denselayer1's 32 new ones
        fr = ad.fractions
        assert not torch.allclose(fr[1], fr[3])
        assert torch.allclose(fr[4], (64 * fr[1] + 32 * fr[3]) / 96, atol=1e-12)


def test_pooling_over_active_positions_only():
    m = _randomise_bn(benchmark_models.BenchmarkCNN("relu")).eval()
    x = torch.randn(2, 3, 64, 64)
    mask = torch.ones(2, 64, 64)
    mask[0, :40] = 0
    feats = []
    h = m.pool.register_forward_pre_hook(lambda mod, inp: feats.append(inp[0].detach().clone()))
    try:
        with torch.no_grad():
            ref = m(x)
            assert torch.allclose(convad.wrap(m, pool="active")(x, torch.ones(2, 64, 64)), ref, atol=1e-5)
            feats.clear()
            ad = convad.wrap(m, "majority", pool="active")
            out = ad(x, mask)
    finally:
        h.remove()
    f = feats[0]
    on = convad.keep(ad.fractions[-1], "majority").expand_as(f).to(f.dtype)
    expected = m.fc((f * on).sum((2, 3)) / on.sum((2, 3)))
    assert torch.allclose(out, expected, atol=1e-5)
    assert not torch.allclose(out[0], m.fc(f[0].mean((1, 2))), atol=1e-3)  # differs from pooling the zeros in
    with pytest.raises(ValueError, match="pool"):
        convad.wrap(m, pool="max")


def _two_layer_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 1, 2), nn.ReLU(), nn.Conv2d(1, 1, 2), nn.Flatten()).eval()


@pytest.mark.parametrize("hidden, expected", [((1, 1), 1 - 4 / 16), ((0, 0), 1 - 1 / 16), ((0, 1), 1 - 2 / 16)])
def test_phi_on_a_hand_worked_two_layer_net(hidden, expected):
    # Finding 9 of issue 32: Phi is the path-weighted share of visible input, by hand. Two 2 x 2
    # convolutions take a 3 x 3 image to one position; pixel (r, c) reaches it along
    # [1, 2, 1][r] * [1, 2, 1][c] of the 16 paths. Hiding the middle pixel gives 0.75, a corner
    # 15/16, an edge 14/16, while the plain visible share of the receptive field is 8/9 for each:
    # a computation of the unweighted share (or a window sum without the division) fails here.
    mask = torch.ones(1, 3, 3)
    mask[0, hidden[0], hidden[1]] = 0
    ad = convad.wrap(_two_layer_net(), "majority")
    with torch.no_grad():
        ad(torch.randn(1, 3, 3, 3), mask)
    assert len(ad.fractions) == 2
    assert ad.fractions[-1].item() == pytest.approx(expected, abs=1e-12)
    assert abs(ad.fractions[-1].item() - 8 / 9) > 0.01
    # the first layer's windows: each holds the hidden pixel or not, 3 of 4 visible where it does
    first = ad.fractions[0][0, 0]
    windows = torch.tensor([[hidden[0] - r in (0, 1) and hidden[1] - c in (0, 1) for c in range(2)] for r in range(2)])
    torch.testing.assert_close(first, torch.where(windows, 0.75, 1.0).double())


def test_phi_is_documented_as_computed():
    # Finding 9 of issue 32: the module called Phi "the fraction of unmasked input in its receptive
    # field", which the recursive window mean is not (see the hand-worked case above)
    text = " ".join((convad.__doc__ + convad.position_attribution.__doc__).split())
    assert "fraction of unmasked input in its receptive field" not in text
    assert "path" in convad.position_attribution.__doc__ and "not the plain" in text


def test_lenient_convad_is_painting_zero_where_no_position_is_switched_off():
    # ConvAD zeroes hidden pixels as painting 0 does, so under lenient they differ only where a
    # window saw nothing but hidden input: scattered single pixels (no 2 x 2 window all hidden)
    # give the same logits, a hidden 2 x 2 block does not (the biases respond to the flat patch)
    from xaihelpers import causal_study

    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(3, 4, 2), nn.ReLU(), nn.Conv2d(4, 4, 2), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(4, 3)).eval()
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            m.bias.data.uniform_(0.5, 1.0)
    x = torch.randn(2, 3, 6, 6)
    scattered = torch.ones(6, 6)
    scattered[::2, ::2] = 0  # no 2 x 2 window is all hidden
    block = torch.ones(6, 6)
    block[1:3, 1:3] = 0
    df = causal_study.occlusion_agreement(net, x, torch.stack([scattered, block]), "lenient", "zero", verbose=False)
    assert list(df.columns) == ["image", "mask", "hidden", "agree", "logit_gap", "switched_off", "any_off"]
    on_scattered, on_block = df[df["mask"] == 0], df[df["mask"] == 1]
    assert not on_scattered["any_off"].any() and (on_scattered["logit_gap"] < 1e-5).all() and on_scattered["agree"].all()
    assert on_block["any_off"].all() and (on_block["logit_gap"] > 1e-3).all()
    assert on_scattered["hidden"].iloc[0] == pytest.approx(9 / 36)
    # the first layer has 25 positions, one all-hidden window; the second 16, none with Phi = 0
    assert on_block["switched_off"].iloc[0] == pytest.approx(1 / 41)
    with pytest.raises(ValueError, match="masks of shape"):
        causal_study.occlusion_agreement(net, x, torch.ones(5, 5), verbose=False)
    with pytest.raises(ValueError, match="how in"):
        causal_study.occlusion_agreement(net, x, block[None], how="convad", verbose=False)
