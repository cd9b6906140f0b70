"""The exercises' checkers: the right answer passes, a wrong one fails with a hint.

Each right answer is computed here the way the chapter's worked solution computes it,
not taken from :func:`xaihelpers.exercises.reference`; each wrong answer is a mistake a
reader makes (the wrong layer, the map after its ReLU, a list in another order, the
values of the foil the exercise compares with). The models are small: a ResNet-18 with
random weights at 64 px, the benchmark CNN, a tiny ReLU6 network.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

import xaihelpers as xh
import xaihelpers.exercises as ex
from conftest import NOTEBOOKS


def _said(capsys) -> str:
    return capsys.readouterr().out


def _right(capsys, name, answer, *context, **kw):
    assert ex.check(name, answer, *context, **kw) is True
    out = _said(capsys)
    assert out.startswith(f"{name}: right."), out


def _wrong(capsys, name, answer, *context, hint: str = "Hint:", **kw):
    assert ex.check(name, answer, *context, **kw) is False
    out = _said(capsys)
    assert out.startswith(f"{name}: not right yet.") and hint in out, out
    return out


# ---------------------------------------------------------------- the module itself

def test_no_answer_says_what_is_expected_and_unknown_names_are_refused(capsys):
    for name in ex.CHECKERS:
        assert ex.check(name, None) is None
        out = _said(capsys)
        assert out.startswith(f"{name}: no answer yet. Expected: ") and ex.expected(name) in out
    with pytest.raises(ValueError, match="expected an exercise name"):
        ex.check("ex99-nothing", 1)


CHECK_CALL = re.compile(r"""exercises\.check\(\s*["']([\w-]+)["']""")


def _check_calls() -> dict[str, set[str]]:
    used: dict[str, set[str]] = {}
    for nb in NOTEBOOKS:
        for cell in json.loads(nb.read_text())["cells"]:
            if cell["cell_type"] == "code":
                for name in CHECK_CALL.findall("".join(cell["source"])):
                    used.setdefault(name, set()).add(nb.stem)
    return used


def test_every_check_in_the_chapters_exists_and_every_checker_is_used_by_its_chapter():
    used = _check_calls()
    assert set(used) <= set(ex.CHECKERS), sorted(set(used) - set(ex.CHECKERS))
    assert set(ex.CHECKERS) <= set(used), sorted(set(ex.CHECKERS) - set(used))
    for name, stems in used.items():
        assert stems == {ex.CHECKERS[name].chapter}, (name, stems)


def test_each_check_follows_its_exercise_with_the_answer_variable_set_to_none():
    """A check cell sits after its exercise and before its solution, and starts from None."""
    for nb in NOTEBOOKS:
        cells = json.loads(nb.read_text())["cells"]
        for i, cell in enumerate(cells):
            src = "".join(cell["source"])
            names = CHECK_CALL.findall(src) if cell["cell_type"] == "code" else []
            if not names or "= None" not in src:
                continue  # a solution cell calls the check too, with the answer filled in
            (name,) = names
            before = "".join(cells[i - 1]["source"])
            after = "".join(cells[i + 1]["source"])
            assert f":label: {name}" in before, (nb.stem, name)
            assert after.lstrip("`").startswith(f"{{solution-start}} {name}"), (nb.stem, name)
            var = f"answer_{name.replace('-', '_')}"
            assert re.search(rf"^{var} = None\b", src, re.M) and f", {var}," in src, (nb.stem, name)


# ---------------------------------------------------------------- chapter 0

@pytest.fixture(scope="module")
def resnet():
    """A ResNet-18 with random weights (the head of torchvision's ImageNet models), 2 images at 64 px."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval()
    x = torch.randn(2, 3, 64, 64)
    return model, x, xh.models.imagenet_classes()


def test_ex00_top3(capsys, resnet):
    model, x, classes = resnet
    top3 = [c for c, _, _ in xh.models.predict(model, x[:1], classes, k=5)[0]][:3]
    maps = xh.baselines.grad_cam(model, x[:1].repeat(3, 1, 1, 1), top3)
    _right(capsys, "ex00-top3", maps, model, x[:1])
    _wrong(capsys, "ex00-top3", maps.flip(0), model, x[:1], hint="in the order [2, 1, 0]")
    _wrong(capsys, "ex00-top3", maps[:2], model, x[:1], hint="expected a tensor of shape (3, 64, 64)")
    _wrong(capsys, "ex00-top3", xh.baselines.grad_cam(model, x[:1].repeat(3, 1, 1, 1), [1, 2, 3]), model, x[:1],
           hint="top5[i]")


@pytest.mark.parametrize("picker", ["resnet", "lite0"])
def test_ex00_layer(capsys, resnet, lite0, picker):
    """The middle layer comes from a public picker, so the check holds for both kinds of MODEL."""
    if picker == "resnet":
        model, x, _ = resnet
    else:
        model, prep, _ = lite0
        x = xh.data.to_batch(list(xh.sample_images(["coffee"]).values()), prep, "cpu")
    targets = model(x).argmax(1).tolist()
    mid = xh.models.default_layer(model, "middle")
    _right(capsys, "ex00-layer", xh.baselines.grad_cam(model, x, targets, layer=mid), model, x, targets)
    _wrong(capsys, "ex00-layer", xh.baselines.grad_cam(model, x, targets), model, x, targets, hint="default (last) layer")


def test_ex00_relu(capsys, resnet):
    model, x, classes = resnet
    espresso = classes.index("espresso")
    signed = xh.baselines.grad_cam(model, x[:1], espresso, relu=False)[0]
    assert (signed < 0).any()  # else the ReLU would change nothing
    _right(capsys, "ex00-relu", signed, model, x[:1], classes)
    _right(capsys, "ex00-relu", signed[None], model, x[:1], classes)  # (1, H, W) is accepted
    _wrong(capsys, "ex00-relu", xh.baselines.grad_cam(model, x[:1], espresso)[0], model, x[:1], classes,
           hint="relu=False")
    _wrong(capsys, "ex00-relu", xh.baselines.grad_cam(model, x[:1], espresso + 1, relu=False)[0], model, x[:1], classes,
           hint="classes.index('espresso')")


def test_ex00_hooks(capsys, resnet):
    model, x, _ = resnet
    layer = xh.models.default_layer(model)
    with torch.no_grad(), xh.record(model, [layer]) as rec:
        logits = model(x)
    mean = rec.activations[layer].mean(dim=(2, 3))
    assert torch.allclose(model.fc(mean), logits, atol=1e-5)  # the property the exercise asks about
    _right(capsys, "ex00-hooks", mean, model, x)
    _wrong(capsys, "ex00-hooks", rec.activations[layer], model, x, hint="average them over the two spatial")
    _wrong(capsys, "ex00-hooks", rec.activations[layer].amax(dim=(2, 3)), model, x, hint="mean(dim=(2, 3))")


# ---------------------------------------------------------------- chapter 1

@pytest.fixture(scope="module")
def bench():
    model, prep, _ = xh.load_model("fmnist_cnn_relu", device="cpu")
    ds = xh.benchmark.cluttered_fashion_mnist("test", n=16, verbose=False)
    return model, prep.normalize(ds.images), ds.labels, ds.masks, ds.boxes


def test_ex01_tolerance(capsys, bench):
    model, x, y, masks, _ = bench
    rate = {m: [float(np.nanmean(xh.metrics.pointing_game(xh.baselines.explain(model, x, y, m), masks, tolerance=t)))
                for t in (0, 2, 4, 8)] for m in ("gradcam", "saliency")}
    assert np.abs(np.subtract(rate["gradcam"], rate["saliency"])).max() > 1e-3  # else the foil below would be right
    _right(capsys, "ex01-tolerance", rate["gradcam"], model, x, y, masks)
    _right(capsys, "ex01-tolerance", np.array(rate["gradcam"]) + 5e-4, model, x, y, masks)  # within 1e-3
    _wrong(capsys, "ex01-tolerance", rate["saliency"], model, x, y, masks, hint="vanilla gradient")
    _wrong(capsys, "ex01-tolerance", rate["gradcam"][::-1], model, x, y, masks, hint="cannot fall")
    _wrong(capsys, "ex01-tolerance", rate["gradcam"][:3], model, x, y, masks, hint="expected 4 numbers")


def test_ex01_normalise(capsys, bench):
    model, x, y, masks, boxes = bench
    ig = xh.explainers.get("integrated_gradients")
    kw = dict(stability_samples=1, fidelity_subsets=20, n_steps=8, verbose=False)
    a, b = (xh.evaluation.evaluate(ig, model, x[:3], y[:3], masks[:3], boxes[:3], normalise=k, **kw)[0] for k in ("max", None))
    loc = [c for c in a if c.startswith("loc_error@")]
    cols = {c: [c] for c in ("pointing_game", "attribution_localisation", "sparseness", "fidelity", "stability")}
    cols["loc_error"] = loc
    changed = [c for c, cs in cols.items() if np.nanmax(np.abs(a[cs].to_numpy() - b[cs].to_numpy())) > 1e-6]
    assert "stability" in changed  # a distance between maps scales with them
    args = (model, x[:3], y[:3], masks[:3], boxes[:3])
    _right(capsys, "ex01-normalise", changed, *args)
    _wrong(capsys, "ex01-normalise", list(cols), *args, hint="unchanged by a positive factor")
    _wrong(capsys, "ex01-normalise", [c for c in changed if c != "stability"], *args, hint="scales with the maps")
    _wrong(capsys, "ex01-normalise", ["gini"], *args, hint="unknown ['gini']")


def test_ex01_randomise(capsys, bench):
    model, x, y, _, _ = bench
    quick = ["saliency", "guided_backprop", "gradcam", "lrp_epsilon_plus"]
    mean = {}
    for sim in ("ssim", "spearman"):
        for m in quick:
            c = xh.sanity.cascading_randomisation(xh.explainers.get(m), model, x[:2], y[:2], similarity=sim, signed=False)
            mean[sim, m] = c.loc[c["stage"] > 0, "similarity"].mean()
    fail = {sim: [m for m in quick if mean[sim, m] >= 0.5] for sim in ("ssim", "spearman")}
    _right(capsys, "ex01-randomise", fail["ssim"], model, x[:2], y[:2], methods=quick)
    _wrong(capsys, "ex01-randomise", [m for m in quick if m not in fail["ssim"]], model, x[:2], y[:2], methods=quick)
    if set(fail["spearman"]) != set(fail["ssim"]):
        _wrong(capsys, "ex01-randomise", fail["spearman"], model, x[:2], y[:2], methods=quick, hint="similarity=\"ssim\"")
    _wrong(capsys, "ex01-randomise", ["occlusion"], model, x[:2], y[:2], methods=quick, hint="unknown")


# ---------------------------------------------------------------- chapter 2

GFI_BENCH = {"layer": "features.res1", "bg": "constant", "probabilities": False}  # the chapter's benchmark setting


def test_ex02_lambda(capsys, bench):
    model, x, y, _, _ = bench
    j = int((y != y[0]).nonzero()[0])
    duo, pair = torch.cat([x[0], x[j]], dim=-1)[None], [int(y[0]), int(y[j])]
    corr = []
    for lam in (1.0, 0.0):
        m = xh.gfi.explain(model, duo.expand(2, -1, -1, -1), pair, iterations=30, lam=lam, verbose=False, **GFI_BENCH)
        corr.append(float(xh.metrics.pearson(m[:1], m[1:])[0]))
    assert abs(corr[0] - corr[1]) > 1e-2  # else swapping them would be right
    _right(capsys, "ex02-lambda", corr, model, duo, pair, 30, GFI_BENCH)
    _wrong(capsys, "ex02-lambda", corr[::-1], model, duo, pair, 30, GFI_BENCH, hint="swapped")
    _wrong(capsys, "ex02-lambda", corr[:1], model, duo, pair, 30, GFI_BENCH, hint="expected 2 numbers")


def test_ex02_logits(capsys, bench):
    model, x, y, _, _ = bench
    m = {p: xh.gfi.explain(model, x[:3], y[:3], iterations=30, verbose=False, **{**GFI_BENCH, "probabilities": p})
         for p in (True, False)}
    pearson, rank = xh.metrics.pearson(m[True], m[False]), xh.metrics.spearman(m[True], m[False])
    assert np.abs(pearson - rank).max() > 1e-2
    _right(capsys, "ex02-logits", pearson, model, x[:3], y[:3], 30, GFI_BENCH)
    _wrong(capsys, "ex02-logits", rank, model, x[:3], y[:3], 30, GFI_BENCH, hint="rank correlations")
    _wrong(capsys, "ex02-logits", np.ones(3), model, x[:3], y[:3], 30, GFI_BENCH, hint="probabilities")


def test_ex02_stage1(capsys, bench):
    model, x, y, masks, _ = bench
    shares = [float(np.nanmean(xh.metrics.attribution_localisation(
        xh.gfi.explain(model, x[:3], y[:3], iterations=45, stage1_iterations=s, verbose=False, **GFI_BENCH), masks[:3])))
        for s in (0, 40)]
    assert abs(shares[0] - shares[1]) > 1e-2  # else the reversed order would be right
    _right(capsys, "ex02-stage1", shares, model, x[:3], y[:3], masks[:3], 45, GFI_BENCH)
    _wrong(capsys, "ex02-stage1", shares[::-1], model, x[:3], y[:3], masks[:3], 45, GFI_BENCH, hint="swapped")
    _wrong(capsys, "ex02-stage1", shares[:1], model, x[:3], y[:3], masks[:3], 45, GFI_BENCH, hint="expected 2 numbers")


# ---------------------------------------------------------------- chapter 3

def test_ex03_post(capsys, bench):
    model, x, y, _, _ = bench
    share = [float((xh.srd.explain(model, x[:4], y[:4], vectors=v) > 0).float().mean()) for v in ("pre", "post")]
    assert abs(share[0] - share[1]) > 1e-3  # else swapping them would be right
    _right(capsys, "ex03-post", share, model, x[:4], y[:4])
    _wrong(capsys, "ex03-post", share[::-1], model, x[:4], y[:4], hint="swapped")
    _wrong(capsys, "ex03-post", share[:1], model, x[:4], y[:4], hint="expected 2 numbers")


def test_ex03_rule(capsys, bench):
    model, x, y, _, _ = bench
    duo = torch.cat([x[0], x[1]], dim=-1)[None]  # two benchmark images side by side, 64 x 128
    pair = [int(y[0]), int(y[1])]
    halves = torch.zeros(2, 64, 128, dtype=torch.bool)
    halves[0, :, :64] = True
    halves[1, :, 64:] = True

    def shares(rule):
        maps = xh.srd.explain(model, duo.expand(2, -1, -1, -1), pair, rule=rule)
        return xh.metrics.attribution_localisation(maps, halves).tolist()

    identity, contrastive = shares("identity"), shares("contrastive")
    assert np.abs(np.subtract(identity, contrastive)).max() > 1e-3  # else the foil would be right
    _right(capsys, "ex03-rule", identity, model, duo, pair)
    _wrong(capsys, "ex03-rule", contrastive, model, duo, pair, hint="class-contrastive")
    _wrong(capsys, "ex03-rule", [1.0, 1.0], model, duo, pair, hint="rule=\"identity\"")


@pytest.fixture(scope="module")
def relu6_net():
    """A tiny ReLU6 network whose activations pass the cap of 6 (its first layer is scaled up)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU6(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU6(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5)).eval()
    with torch.no_grad():
        net[0].weight.mul_(20)
    return net, torch.randn(3, 3, 16, 16)


def test_plain_softplus_drops_the_cap_and_leaves_the_model_alone(relu6_net):
    net, x = relu6_net
    copy = ex.plain_softplus(net, 100)
    assert not any(isinstance(m, nn.ReLU6) for m in copy.modules()) and isinstance(net[1], nn.ReLU6)
    with torch.no_grad():
        assert (net[1](net[0](x)) == 6).any()  # the cap is reached
        assert copy[1](net[0](x)).max() > 6.5  # and the plain softplus goes past it


def test_ex03_relu6(capsys, relu6_net):
    net, x = relu6_net
    with torch.no_grad():
        y = net(x)
        smooth = [float((xh.attack.smooth(net, b)(x) - y).abs().max()) for b in (10, 30, 100)]
        plain = [float((ex.plain_softplus(net, b)(x) - y).abs().max()) for b in (10, 30, 100)]
    assert smooth[-1] < smooth[0] and min(plain) > 10 * max(smooth[-1], 1e-3)  # the property the exercise shows
    _right(capsys, "ex03-relu6", smooth, net, x)
    _wrong(capsys, "ex03-relu6", plain, net, x, hint="plain softplus copy")
    _wrong(capsys, "ex03-relu6", smooth[:2], net, x, hint="expected 3 numbers")
    _wrong(capsys, "ex03-relu6", [2 * s + 1 for s in smooth], net, x, hint="xh.attack.smooth(net, beta)(xp)")


def test_ex03_apop_layer(capsys, bench):
    model, x, y, _, _ = bench
    acc = []
    for k in range(sum(isinstance(m, nn.ReLU) for m in model.modules())):
        with torch.no_grad():
            acc.append((xh.apop.frozen_forward(model, x, [], binarise=k).argmax(1) == y).float().mean().item())
    best, worst = int(np.argmin(acc)) + 1, int(np.argmax(acc)) + 1
    assert acc[worst - 1] - acc[best - 1] > 0.5  # 16 images: far more than two standard errors apart
    _right(capsys, "ex03-apop-layer", best, model, x, y)
    _right(capsys, "ex03-apop-layer", np.int64(best), model, x, y)
    _wrong(capsys, "ex03-apop-layer", worst, model, x, y, hint="binarise one ReLU at a time")
    _wrong(capsys, "ex03-apop-layer", "fifth", model, x, y, hint="expected one ReLU number")


# ---------------------------------------------------------------- chapter 4

def test_ex04_bn(capsys, half_masks):
    model, x, y, masks = half_masks
    with torch.no_grad():
        kept = [float((xh.convad.wrap(model, "lenient", deactivate=d)(x, masks).argmax(1) == y).float().mean())
                for d in ("all", "spatial")]
    _right(capsys, "ex04-bn", kept, model, x, masks, y, "lenient")
    _right(capsys, "ex04-bn", torch.tensor(kept), model, x, masks.numpy(), y, "lenient")
    if kept[0] != kept[1]:
        _wrong(capsys, "ex04-bn", kept[::-1], model, x, masks, y, "lenient", hint="swapped")
    _wrong(capsys, "ex04-bn", [kept[0] + 0.25, kept[1]], model, x, masks, y, "lenient", hint="deactivate=d")
    _wrong(capsys, "ex04-bn", kept[:1], model, x, masks, y, "lenient", hint="expected 2 numbers")


def test_patch_masks():
    m = ex.patch_masks(64, 16, 8)
    assert m.shape == (49, 64, 64) and bool(((m == 0) | (m == 1)).all())
    assert (m == 0).flatten(1).sum(1).eq(16 * 16).all()  # one whole patch hidden per mask
    assert m[1, 0, 8:24].eq(0).all() and m[7, 8:24, 0].eq(0).all()  # row-major: the second mask moves right
    with pytest.raises(ValueError, match="expected 0 < k <= side"):
        ex.patch_masks(64, 80, 8)


def test_ex04_occlusion(capsys, half_masks):
    model, x, _, _ = half_masks
    x1 = x[:1]
    with torch.no_grad():
        p = model(x1).softmax(1)[0]
        t = int(p.argmax())
        drops = {}
        for how in ("convad", "zero"):
            predict = xh.causal.masked_predictor(model, x1, how, "lenient")
            masks = torch.ones(49, 64, 64)
            for i in range(7):
                for j in range(7):
                    masks[7 * i + j, 8 * i : 8 * i + 16, 8 * j : 8 * j + 16] = 0
            drops[how] = (p[t] - predict(masks).softmax(1)[:, t]).reshape(7, 7)
    assert (drops["convad"] - drops["zero"]).abs().max() > 1e-2 * drops["convad"].abs().max()
    _right(capsys, "ex04-occlusion", drops["convad"], model, x1, "lenient")
    _right(capsys, "ex04-occlusion", drops["convad"][None].numpy(), model, x1, "lenient")  # (1, 7, 7) is accepted
    _wrong(capsys, "ex04-occlusion", drops["zero"], model, x1, "lenient", hint="painted patch")
    _wrong(capsys, "ex04-occlusion", -drops["convad"], model, x1, "lenient", hint="signs are flipped")
    _wrong(capsys, "ex04-occlusion", drops["convad"][:3], model, x1, "lenient", hint="expected a tensor of shape (7, 7)")


def test_ex04_iters(capsys, half_masks):
    model, x, y, _ = half_masks
    x1, t = x[:1], int(y[0])
    predict = xh.causal.masked_predictor(model, x1, "zero")

    def agreement(k, sim):
        maps = [xh.causal.responsibility(predict, (64, 64), t, iters=k, seed=s, verbose=False)[0] for s in (0, 1, 2)]
        return float(np.nanmean([sim(maps[a][None], maps[b][None])[0] for a, b in ((0, 1), (0, 2), (1, 2))]))

    right = [agreement(k, xh.metrics.spearman) for k in (1, 4)]
    pearson = [agreement(k, xh.metrics.pearson) for k in (1, 4)]
    assert right[1] > right[0]  # the property the exercise asks about: more trees, maps that agree more
    _right(capsys, "ex04-iters", right, model, x1, t, 4)
    _wrong(capsys, "ex04-iters", right[::-1], model, x1, t, 4, hint="swapped")
    if np.abs(np.subtract(right, pearson)).max() > 1e-3:
        _wrong(capsys, "ex04-iters", pearson, model, x1, t, 4, hint="Pearson")
    _wrong(capsys, "ex04-iters", right[:1], model, x1, t, 4, hint="expected 2 numbers")


# ---------------------------------------------------------------- chapter 5

@pytest.fixture(scope="module")
def half_masks(bench):
    """The benchmark CNN, 4 images and binary masks that keep the left half and a corner."""
    model, x, y, _, _ = bench
    masks = torch.zeros(4, 64, 64)
    masks[:, :, :32] = 1
    masks[1:, :16, 32:] = 1
    return model, x[:4], y[:4], masks


def test_ex05_distance(capsys, half_masks):
    model, x, _, masks = half_masks
    layers = xh.actmatch.default_layers(model, logits=False)
    assert xh.actmatch.LOGITS not in layers

    def shares(distance, weighted=True):
        d = np.array([(w if weighted else 1) * xh.actmatch.activation_distance(model, x, masks, {n: 1.0}, distance)
                      for n, w in layers.items()])
        return d / d.sum()

    right, std, plain = shares("mse"), shares("std_mse"), shares("mse", weighted=False)
    assert np.abs(right - std).max() > 1e-2 and np.abs(right - plain).max() > 1e-2  # else the foils would be right
    _right(capsys, "ex05-distance", right, model, x, masks)
    _right(capsys, "ex05-distance", list(right + 5e-4), model, x, masks)
    _wrong(capsys, "ex05-distance", std, model, x, masks, hint="standardised distance")
    _wrong(capsys, "ex05-distance", plain, model, x, masks, hint="leave out the layer weights")
    _wrong(capsys, "ex05-distance", right[:-1], model, x, masks, hint=f"expected {len(layers)} numbers")


def test_ex05_fill(capsys, half_masks):
    model, x, y, masks = half_masks
    blur = xh.occlusion.background(x, "blur")
    kept = [float(xh.actmatch.necessity(model, x, masks, y, fill=f)["p_kept"].mean()) for f in ("mean", blur)]
    removed = [float(xh.actmatch.necessity(model, x, masks, y, fill=f)["p_removed"].mean()) for f in ("mean", blur)]
    assert abs(kept[0] - kept[1]) > 1e-3 and np.abs(np.subtract(kept, removed)).max() > 1e-3
    _right(capsys, "ex05-fill", kept, model, x, masks, y)
    _wrong(capsys, "ex05-fill", kept[::-1], model, x, masks, y, hint="swapped")
    _wrong(capsys, "ex05-fill", removed, model, x, masks, y, hint="complement")
    _wrong(capsys, "ex05-fill", kept[:1], model, x, masks, y, hint="expected 2 numbers")


def test_ex05_narrow(capsys):
    count = [sum(p.numel() for p in xh.actmatch.MaskNet(w, b).parameters())
             for w, b in (((8, 16, 32, 64), 128), ((32, 64, 128, 256), 512))]
    assert count[1] > 10 * count[0]  # the property the exercise shows: widths times 4, parameters times about 16
    _right(capsys, "ex05-narrow", count, (8, 16, 32, 64), 128)
    _right(capsys, "ex05-narrow", np.array(count, dtype=np.int64), (8, 16, 32, 64), 128)
    _wrong(capsys, "ex05-narrow", count[::-1], (8, 16, 32, 64), 128, hint="swapped")
    _wrong(capsys, "ex05-narrow", [count[0] - 1, count[1]], (8, 16, 32, 64), 128, hint="MaskNet(widths, bottleneck)")
    _wrong(capsys, "ex05-narrow", count[:1], (8, 16, 32, 64), 128, hint="expected 2 numbers")


# ---------------------------------------------------------------- chapter 6

@pytest.fixture(scope="module")
def small_rank():
    """The chapter's kind of ranking: per-image scores of three methods on 12 images, ranked with ties shared."""
    import pandas as pd

    rng = np.random.default_rng(1)
    cols = ["attribution_localisation", "fidelity", "deletion", "seconds"]
    results = {m: pd.DataFrame(rng.random((12, len(cols))) + shift, columns=cols)
               for m, shift in (("A", 0.0), ("B", 0.05), ("C", 0.6))}
    return xh.compare.ranks(results, n_boot=200)


def test_ex06_weights(capsys, small_rank):
    import pandas as pd

    r = small_rank.drop(columns=["mean rank", "mean rank low", "mean rank high"])
    # a literal loop over the metrics, weights written out
    weight = {"fidelity": 2, "deletion": 2, "insertion": 2, "seconds": 0, "per_fwd_bwd": 0}
    weighted = pd.Series({m: sum(weight.get(c, 1) * r.loc[m, c] for c in r.columns if not np.isnan(r.loc[m, c]))
                          / sum(weight.get(c, 1) for c in r.columns if not np.isnan(r.loc[m, c])) for m in r.index})
    plain = small_rank["mean rank"]
    assert (weighted - plain.reindex(weighted.index)).abs().max() > 1e-3
    _right(capsys, "ex06-weights", weighted, small_rank)
    _right(capsys, "ex06-weights", weighted.to_dict(), small_rank)
    _wrong(capsys, "ex06-weights", plain, small_rank, hint="unweighted mean ranks")
    _wrong(capsys, "ex06-weights", weighted.drop("A"), small_rank, hint="missing ['A']")
    _wrong(capsys, "ex06-weights", weighted.tolist(), small_rank, hint="expected a pandas Series or a dict")


def test_ex06_agree(capsys):
    import pandas as pd

    torch.manual_seed(0)
    base = torch.rand(4, 16, 16)
    maps = {"a": base, "b": base + 0.3 * torch.rand(4, 16, 16), "c": torch.rand(4, 16, 16)}
    names = list(maps)
    top = {k: xh.evaluation.top_masks(m, [0.1] * 4, (16, 16)).bool() for k, m in maps.items()}
    iou = pd.DataFrame([[float(((top[a] & top[b]).sum((1, 2)) / (top[a] | top[b]).sum((1, 2))).mean()) for b in names]
                        for a in names], index=names, columns=names)
    assert iou.loc["a", "b"] > iou.loc["a", "c"]  # similar maps share more of their top pixels
    _right(capsys, "ex06-agree", iou, maps)
    _right(capsys, "ex06-agree", iou.loc[["c", "a", "b"], ["b", "c", "a"]], maps)  # any order of the methods
    _wrong(capsys, "ex06-agree", xh.compare.agreement(maps), maps, hint="rank correlation")
    _wrong(capsys, "ex06-agree", iou * 0.5, maps, hint="IoU = (a & b)")
    _wrong(capsys, "ex06-agree", iou.drop(index="c", columns="c"), maps, hint="expected the methods")


def test_ex06_activation(capsys, bench):
    model, x, y, masks, _ = bench
    gelu = xh.load_model("fmnist_cnn_gelu", device="cpu")[0]

    def shares(net):
        return [float(np.nanmean(xh.metrics.attribution_localisation(xh.explainers.get(m)(net, x[:4], y[:4]), masks[:4])))
                for m in ("srd_input", "saliency", "guided_backprop")]

    right, relu = shares(gelu), shares(model)
    assert np.abs(np.subtract(right, relu)).max() > 1e-3  # else the ReLU network's values would pass
    _right(capsys, "ex06-activation", right, gelu, x[:4], y[:4], masks[:4])
    _wrong(capsys, "ex06-activation", relu, gelu, x[:4], y[:4], masks[:4], hint="GELU network")
    _wrong(capsys, "ex06-activation", right[:2], gelu, x[:4], y[:4], masks[:4], hint="expected 3 numbers")


# ---------------------------------------------------------------- the chapters' solutions

@pytest.mark.notebook
@pytest.mark.parametrize("stem", sorted({c.chapter for c in ex.CHECKERS.values()}))
def test_every_worked_solution_passes_its_check(executed, stem):
    """Run All: each check cell says what is expected, each solution's check says right."""
    nb = json.loads(executed(stem).read_text())
    said = {}
    for cell in nb["cells"]:
        src = "".join(cell["source"])
        names = CHECK_CALL.findall(src) if cell["cell_type"] == "code" else []
        if names:
            text = "".join("".join(o.get("text", "")) for o in cell.get("outputs", []) if o.get("output_type") == "stream")
            said.setdefault(names[0], []).append(text)
    assert said and set(said) == {n for n, c in ex.CHECKERS.items() if c.chapter == stem}
    for name, texts in said.items():
        assert len(texts) == 2, name  # the check cell, then the solution's check
        assert f"{name}: no answer yet." in texts[0] and f"{name}: right." in texts[1], (name, texts)


# ---------------------------------------------------------------- the lessons: implement an equation

def test_ex02_eq4(capsys):
    import torch.nn.functional as F

    def mask(weights, basis, size):  # the lesson's solution, written independently of the package
        m = torch.einsum("nc,nchw->nhw", weights, basis)[:, None]
        m = F.interpolate(m, size=size, mode="bilinear", align_corners=False)[:, 0].clamp(min=0)
        return m / (m.flatten(1).amax(1)[:, None, None] + 1e-12)

    def no_cut(weights, basis, size):  # negatives left in
        m = F.interpolate(torch.einsum("nc,nchw->nhw", weights, basis)[:, None], size=size, mode="bilinear",
                          align_corners=False)[:, 0]
        return m / (m.flatten(1).amax(1)[:, None, None] + 1e-12)

    def nan_at_zero(weights, basis, size):  # no epsilon: 0 / 0 on the edge case
        m = F.interpolate(torch.einsum("nc,nchw->nhw", weights, basis)[:, None], size=size, mode="bilinear",
                          align_corners=False)[:, 0].clamp(min=0)
        return m / m.flatten(1).amax(1)[:, None, None]

    _right(capsys, "ex02-eq4", mask, "cpu")
    out = _wrong(capsys, "ex02-eq4", no_cut, "cpu", hint="clamp(min=0)")
    assert "weights of both signs" in out  # names the input that failed
    out = _wrong(capsys, "ex02-eq4", nan_at_zero, "cpu")
    assert "all weights 0" in out
    _wrong(capsys, "ex02-eq4", lambda w, b, s: torch.zeros(2, 3), "cpu", hint="expected shape")
    _wrong(capsys, "ex02-eq4", 3.0, "cpu", hint="expected a function")
    _wrong(capsys, "ex02-eq4", lambda w, b: w, "cpu", hint="raised TypeError")


def test_ex03_eq4(capsys):
    def start(logits, A, target):  # the lesson's solution
        score = logits.gather(1, target[:, None])[:, 0] - logits.mean(1)
        (grad,) = torch.autograd.grad(score.sum(), A)
        return (grad.mean((2, 3), keepdim=True) * A).sum(1).clamp(min=0).detach()

    def plain(logits, A, target):  # the logit alone, not contrastive
        (grad,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), A)
        return (grad.mean((2, 3), keepdim=True) * A).sum(1).clamp(min=0).detach()

    def divided(logits, A, target):  # an unguarded normalisation: NaN on the zero edge case
        m = start(logits, A, target)
        return m / m.flatten(1).amax(1)[:, None, None] * m.flatten(1).amax(1)[:, None, None]

    _right(capsys, "ex03-eq4", start, "cpu")
    _wrong(capsys, "ex03-eq4", plain, "cpu", hint="class-contrastive")
    out = _wrong(capsys, "ex03-eq4", divided, "cpu")
    assert "edge case" in out


def test_ex04_phi(capsys):
    import torch.nn.functional as F

    def pair(v):
        return (v, v) if isinstance(v, int) else tuple(v)

    def attribution(pi, layer):  # the lesson's solution
        k, s, p = pair(layer.kernel_size), pair(layer.stride or layer.kernel_size), pair(layer.padding)
        d = pair(getattr(layer, "dilation", 1))
        ones = torch.ones(1, 1, *k, dtype=pi.dtype)
        return F.conv2d(F.pad(pi, (p[1], p[1], p[0], p[0]), value=1.0), ones, stride=s, dilation=d) / (k[0] * k[1])

    def zero_padded(pi, layer):  # padding read as hidden: the all-ones edge case drops below 1 at the border
        k, s, p = pair(layer.kernel_size), pair(layer.stride or layer.kernel_size), pair(layer.padding)
        d = pair(getattr(layer, "dilation", 1))
        return F.avg_pool2d(pi, k, s, p, count_include_pad=True) if d == (1, 1) else \
            F.conv2d(F.pad(pi, (p[1], p[1], p[0], p[0])), torch.ones(1, 1, *k, dtype=pi.dtype), stride=s, dilation=d) / (k[0] * k[1])

    def stride_one(pi, layer):  # a pooling layer's stride taken as 1
        k, p = pair(layer.kernel_size), pair(layer.padding)
        s = pair(layer.stride) if isinstance(layer, torch.nn.Conv2d) else (1, 1)
        d = pair(getattr(layer, "dilation", 1))
        return F.conv2d(F.pad(pi, (p[1], p[1], p[0], p[0]), value=1.0), torch.ones(1, 1, *k, dtype=pi.dtype),
                        stride=s, dilation=d) / (k[0] * k[1])

    _right(capsys, "ex04-phi", attribution, "cpu")
    _wrong(capsys, "ex04-phi", zero_padded, "cpu", hint="pad with 1")
    out = _wrong(capsys, "ex04-phi", stride_one, "cpu", hint="expected shape")
    assert "max-pooling" in out  # names the input that failed


def test_ex05_tv(capsys):
    def tv(s):  # the lesson's solution
        s = s if s.ndim == 4 else s[:, None]
        pairs = [(s[..., :, 1:], s[..., :, :-1]), (s[..., 1:, :], s[..., :-1, :]),
                 (s[..., 1:, 1:], s[..., :-1, :-1]), (s[..., 1:, :-1], s[..., :-1, 1:])]
        return sum((a - b).abs().mean() for a, b in pairs) / 4

    def four(s):  # the 4-neighbourhood only
        s = s if s.ndim == 4 else s[:, None]
        return ((s[..., :, 1:] - s[..., :, :-1]).abs().mean() + (s[..., 1:, :] - s[..., :-1, :]).abs().mean()) / 2

    def three_d_only(s):  # forgets the channel axis: fails on the (N, 1, H, W) input
        pairs = [(s[:, :, 1:], s[:, :, :-1]), (s[:, 1:, :], s[:, :-1, :]), (s[:, 1:, 1:], s[:, :-1, :-1]),
                 (s[:, 1:, :-1], s[:, :-1, 1:])]
        return sum((a - b).abs().mean() for a, b in pairs) / 4

    _right(capsys, "ex05-tv", tv, "cpu")
    _wrong(capsys, "ex05-tv", four, "cpu", hint="diagonal")
    out = _wrong(capsys, "ex05-tv", three_d_only, "cpu")
    assert "(1, 1, 6, 10)" in out  # names the input that failed


def test_ex01_gini(capsys):
    def gini(maps):  # the lesson's solution
        v = maps.double().abs().flatten(1).sort(1).values
        d = v.shape[1]
        k = torch.arange(1, d + 1, dtype=torch.float64)
        return 1 - 2 * (v / v.sum(1, keepdim=True) * (d - k + 0.5) / d).sum(1)

    def positive_part(maps):  # clamps instead of taking absolute values
        return gini(maps.clamp(min=0))

    def loop(maps):  # a literal loop over the sorted values: the same index, written another way
        out = []
        for m in maps:
            v = sorted(abs(float(a)) for a in m.flatten())
            d, total = len(v), sum(v)
            out.append(1 - 2 * sum(v[k - 1] / total * (d - k + 0.5) / d for k in range(1, d + 1)))
        return torch.tensor(out)

    _right(capsys, "ex01-gini", gini, "cpu")
    _right(capsys, "ex01-gini", loop, "cpu")
    _wrong(capsys, "ex01-gini", positive_part, "cpu", hint="absolute values")
