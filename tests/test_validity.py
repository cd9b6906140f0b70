"""Issue 32, findings 2 and 3: signed sanity checks beside absolute ones, and the metrics' ground-truth check."""

import numpy as np
import pytest
import torch
from torch import nn

from xaihelpers import model_metrics, sanity, validity

H = W = 16


class PixelLinear(nn.Module):
    """Two logits, linear in the channel-summed pixels: logit 0 = <w, x>, logit 1 = 0."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.fc = nn.Linear(H * W, 2, bias=False)
        with torch.no_grad():
            self.fc.weight.zero_()
            self.fc.weight[0] = weight.flatten()

    def forward(self, x):
        return self.fc(x.sum(1).flatten(1))


def input_x_gradient(model, x, target):
    """Input x Gradient of logit ``target`` (signed, summed over channels)."""
    x = x.clone().requires_grad_(True)
    out = model(x)
    t = torch.as_tensor(target).reshape(-1).expand(len(x))
    out.gather(1, t[:, None]).sum().backward()
    return (x * x.grad).sum(1).detach()


def _images(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, H, W, generator=g) + 0.5  # positive pixels: the map's sign is the weight's


# -- finding 2: the randomisation checks report signed beside absolute ------------------------------


def test_cascade_absolute_stays_high_where_only_the_sign_flips():
    # a constructed explainer: the image's intensity times the sign of the model's weights,
    # so randomisation scrambles the signs and nothing else. Before the fix the cascade
    # reported the absolute correlation only, which reads 1 here: "the map did not change".
    model = PixelLinear(torch.ones(H, W))
    x = _images()

    def signed_edges(m, xb, t):
        return xb.sum(1) * torch.sign(m.fc.weight[0].detach()).view(H, W)

    df = sanity.cascading_randomisation(signed_edges, model, x, 0)
    last = df[df["stage"] == df["stage"].max()]
    assert np.allclose(last["similarity"], 1.0)  # |map| never changes
    assert np.abs(last["signed"]).mean() < 0.2  # the signed map is scrambled (0 on average)
    assert np.allclose(df.loc[df["stage"] == 0, "signed"], 1.0)


def test_data_randomisation_signed_tells_scrambled_signs_from_the_same_map():
    a = PixelLinear(torch.ones(H, W))
    signs = torch.where(torch.rand(H, W, generator=torch.Generator().manual_seed(3)) > 0.5, 1.0, -1.0)
    b = PixelLinear(signs)  # "trained on shuffled labels": the same magnitudes, other signs
    x = _images()
    assert np.allclose(sanity.data_randomisation(input_x_gradient, a, b, x, 0), 1.0)
    signed = sanity.data_randomisation(input_x_gradient, a, b, x, 0, signed=True)
    assert np.abs(signed).mean() < 0.2
    assert np.allclose(sanity.data_randomisation(input_x_gradient, a, a, x, 0, signed=True), 1.0)


def test_edge_detector_is_model_free_and_finds_edges():
    x = torch.zeros(1, 3, H, W)
    x[..., :, W // 2 :] = 1.0  # one vertical edge
    e = sanity.edge_detector(None, x)
    assert e.shape == (1, H, W)
    assert torch.all(e[0, :, W // 2 - 1 : W // 2 + 1] > 0) and e[0, :, : W // 2 - 2].abs().max() == 0
    model = PixelLinear(torch.ones(H, W))
    df = sanity.cascading_randomisation(sanity.edge_detector, model, _images(), 0)
    assert np.allclose(df["similarity"], 1.0) and np.allclose(df["signed"], 1.0)  # never fails to "pass" as the image


# -- finding 3: the validity check ------------------------------------------------------------------


def _object_case(n=12, seed=0):
    """Images with an object square at a random place, and a model whose class evidence is that square."""
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(n, H, W)
    x = 0.3 * torch.randn(n, 3, H, W, generator=g)
    for i in range(n):
        r, c = torch.randint(0, H - 6, (2,), generator=g).tolist()
        masks[i, r : r + 6, c : c + 6] = 1
        x[i, :, r : r + 6, c : c + 6] += 2.0
    return x, masks


class BrightSpot(nn.Module):
    """Logit 0 grows with the sum of bright pixels (the object); logit 1 is a constant."""

    def forward(self, x):
        s = torch.relu(x.mean(1) - 1.0).flatten(1).sum(1) / 6.0
        return torch.stack([s, torch.full_like(s, 3.0)], 1)


class Blind(nn.Module):
    """Ignores the image: every metric that asks it cannot depend on the map."""

    def __init__(self):
        super().__init__()
        self.b = nn.Parameter(torch.tensor([1.0, 0.0]))

    def forward(self, x):
        return self.b.expand(len(x), 2) + 0 * x.sum((1, 2, 3))[:, None]


def test_validity_passes_metrics_that_follow_the_map():
    x, masks = _object_case()
    v = validity.metric_validity(BrightSpot(), x, 0, masks, settings={"fidelity": {"subset_size": 40, "n_subsets": 40},
                                                                     "deletion": {"steps": 16, "blur_sigma": 2},
                                                                     "insertion": {"steps": 16, "blur_sigma": 2}})
    assert list(v.index) == list(validity.METRICS)
    assert v["valid"].dtype == bool
    for m in ("pointing_game", "attribution_localisation", "localisation_error", "fidelity", "deletion", "insertion"):
        assert v.loc[m, "valid"], (m, v.loc[m].to_dict())
    # a metric of the map's shape alone cannot be judged by where the mask lies
    assert not v.loc["sparseness", "valid"] and not v.loc["stability", "valid"]
    assert validity.valid_metrics(v) == [m for m in v.index if v.loc[m, "valid"]]


def test_validity_fails_metrics_that_ignore_the_map():
    # the model ignores the image, so fidelity, deletion, insertion and size score every map alike
    x, masks = _object_case()
    v = validity.metric_validity(Blind(), x, 0, masks, metrics=("fidelity", "deletion", "insertion", "size", "pointing_game"),
                                 settings={"fidelity": {"subset_size": 40, "n_subsets": 20},
                                           "deletion": {"steps": 8}, "insertion": {"steps": 8}, "size": {"steps": 10}})
    for m in ("fidelity", "deletion", "insertion", "size"):
        assert not v.loc[m, "valid"], m
        assert v.loc[m, "note"].startswith("uninformative")
    assert v.loc["pointing_game", "valid"]  # map-only: the same masks still separate


def test_random_masks_match_the_area():
    _, masks = _object_case()
    r = validity.random_masks(masks, seed=1)
    assert torch.equal(r.sum((1, 2)), masks.sum((1, 2)))
    assert not torch.equal(r, masks)
    with pytest.raises(ValueError, match="binary"):
        validity.random_masks(masks * 0.5)


def test_validity_rejects_bad_input():
    x, masks = _object_case(n=3)
    with pytest.raises(ValueError, match="expected metrics"):
        validity.metric_validity(BrightSpot(), x, 0, masks, metrics=("accuracy",))
    with pytest.raises(ValueError, match="one mask per image"):
        validity.metric_validity(BrightSpot(), x, 0, masks[:2])
    with pytest.raises(ValueError, match="deletion_fill"):
        model_metrics.deletion_insertion(BrightSpot(), x, masks, 0, deletion_fill="zero")
