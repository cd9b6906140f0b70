import numpy as np
import pytest
import torch

import xaihelpers as xh


@pytest.fixture(scope="module")
def batch(lite0):
    photos = xh.sample_images(["coffee", "chelsea"])
    return xh.data.to_batch(photos.values(), lite0.preprocess)


def test_gradient_matches_captum_saliency(lite0, batch):
    from captum.attr import Saliency

    ref = Saliency(lite0.model).attribute(batch.clone().requires_grad_(True), target=[967, 285], abs=True).amax(1)
    mine = xh.baselines.gradient(lite0.model, batch, [967, 285])
    assert mine.shape == (2, 224, 224)
    assert torch.allclose(mine, ref, rtol=1e-4, atol=1e-7)


def test_grad_cam_matches_pytorch_grad_cam(lite0, batch):
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    with GradCAM(model=lite0.model, target_layers=[lite0.model._act_head]) as cam:
        ref = cam(input_tensor=batch.clone(), targets=[ClassifierOutputTarget(967), ClassifierOutputTarget(285)])
    mine = xh.baselines.grad_cam(lite0.model, batch, [967, 285]).numpy()
    lo, hi = mine.min(axis=(1, 2), keepdims=True), mine.max(axis=(1, 2), keepdims=True)
    mine = (mine - lo) / (hi - lo)  # pytorch-grad-cam min-max scales each map
    assert mine.shape == ref.shape == (2, 224, 224)
    assert np.abs(mine - ref).max() < 1e-3


def test_target_none_explains_the_prediction(lite0, batch):
    a = xh.baselines.grad_cam(lite0.model, batch, None)
    pred = lite0.model(batch).argmax(1).tolist()
    b = xh.baselines.grad_cam(lite0.model, batch, pred)
    assert torch.allclose(a, b)


def test_grad_cam_is_class_sensitive(lite0, batch):
    espresso = xh.baselines.grad_cam(lite0.model, batch[:1], 967)
    cat = xh.baselines.grad_cam(lite0.model, batch[:1], 285)
    assert not torch.allclose(espresso, cat)


def test_bad_inputs_raise(lite0, batch):
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        xh.baselines.gradient(lite0.model, batch[0], 1)
    with pytest.raises(TypeError):
        xh.baselines.gradient(lite0.model, batch.numpy(), 1)
    with pytest.raises(ValueError, match="one target per image"):
        xh.baselines.grad_cam(lite0.model, batch, [1, 2, 3])
    with pytest.raises(ValueError, match=r"\[0, 1000\)"):
        xh.baselines.gradient(lite0.model, batch, 1000)


# -- explain(): the libraries' baselines behind one call ------------------------------------------


@pytest.fixture(scope="module")
def cnn():
    from xaihelpers import benchmark, benchmark_models

    model, prep, _ = benchmark_models.load_benchmark_model("relu", device="cpu")
    ds = benchmark.cluttered_fashion_mnist("test", n=3, verbose=False)
    return model, prep.normalize(ds.images), ds.labels


@pytest.mark.parametrize("method", xh.baselines.METHODS + xh.baselines.OWN_METHODS)
def test_every_method_gives_one_finite_map_per_image(cnn, method):
    model, x, y = cnn
    maps = xh.baselines.explain(model, x, y, method)
    assert maps.shape == (3, 64, 64) and maps.dtype == torch.float32
    assert torch.isfinite(maps).all() and (maps.flatten(1).std(1) > 0).all()
    assert all(p.grad is None for p in model.parameters())  # no gradients left on the weights


def test_explain_saliency_is_the_gradient(cnn):
    model, x, y = cnn
    assert torch.allclose(xh.baselines.explain(model, x, y, "saliency"), xh.baselines.gradient(model, x, y), atol=1e-7)


def test_library_gradcam_equals_ours_up_to_minmax_scaling(cnn):
    model, x, y = cnn
    lib = xh.baselines.explain(model, x, y, "gradcam").numpy()
    mine = xh.baselines.grad_cam(model, x, y).numpy()
    lo, hi = mine.min(axis=(1, 2), keepdims=True), mine.max(axis=(1, 2), keepdims=True)
    assert np.allclose(lib, (mine - lo) / (hi - lo), atol=2e-3)


def test_cam_is_grad_cam_without_relu_for_global_average_pooling(cnn):
    # with GAP and one linear layer, Grad-CAM's channel weights are w_t / (h w)
    model, x, y = cnn
    h = w = 8
    cam = xh.baselines.cam(model, x, y)
    gc = xh.baselines.grad_cam(model, x, y, relu=False)
    assert torch.allclose(cam, gc * h * w, rtol=1e-4, atol=1e-5)


def test_lrp_canonizer_restores_the_model(cnn):
    model, x, y = cnn
    before = {k: v.clone() for k, v in model.state_dict().items()}
    logits = model(x)
    xh.baselines.explain(model, x, y, "lrp_epsilon_plus")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.allclose(model(x), logits)


def test_explain_works_for_lite0(lite0, batch):
    for method in ("saliency", "gradcam", "lrp_epsilon_plus_flat", "cam"):
        maps = xh.baselines.explain(lite0.model, batch, [967, 285], method)
        assert maps.shape == (2, 224, 224) and torch.isfinite(maps).all()


def test_cam_refuses_a_multi_layer_head():
    from torch import nn

    class VGGLike(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
            self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(4 * 30 * 30, 8), nn.ReLU(), nn.Linear(8, 3))

        def forward(self, x):
            return self.classifier(self.features(x))

    with pytest.raises(ValueError, match="Grad-CAM instead"):
        xh.baselines.cam(VGGLike(), torch.zeros(1, 3, 32, 32), 0, layer="features.1")


def test_explain_refuses_unknown_methods_and_bad_input(cnn):
    model, x, y = cnn
    with pytest.raises(ValueError, match="expected method"):
        xh.baselines.explain(model, x, y, "deeplift-ish")
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        xh.baselines.explain(model, x[0], y, "saliency")
    f = xh.explainers.get("occlusion", window=16, stride=16)
    assert f.__name__ == "occlusion" and f(model, x, y).shape == (3, 64, 64)


def test_smoothgrad_noise_is_scaled_per_image(cnn):
    # Smilkov et al.: sigma = noise level x (max - min) of *that* image; its batch mates
    # (here one with 10x the range and a loud noise image) must not change its map
    model, x, y = cnn
    alone = xh.baselines.explain(model, x[:1], y[:1], "smoothgrad", nt_samples=8)
    loud = 10 * torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    together = xh.baselines.explain(model, torch.cat([x[:1], 10 * x[1:2], loud]), torch.cat([y[:2], y[:1]]),
                                    "smoothgrad", nt_samples=8)
    # the same seeded draws and scale for image 0: only float32 rounding in a larger batch
    # separates the two maps (1e-4 of the map's peak is far above it, far below the noise's effect)
    assert torch.allclose(together[0], alone[0], rtol=0, atol=1e-4 * alone[0].abs().max().item())
    again = xh.baselines.explain(model, x[:1], y[:1], "smoothgrad", nt_samples=8, seed=1)
    assert not torch.allclose(again, alone, rtol=0, atol=1e-3 * alone.abs().max().item())  # the seed matters


def test_smoothgrad_is_captums_noise_tunnel_with_the_images_own_scale(cnn):
    from captum.attr import NoiseTunnel, Saliency

    model, x, y = cnn
    xi, yi = x[1:2], y[1:2]
    sigma = 0.15 * (xi.max() - xi.min()).item()
    with torch.random.fork_rng():
        # captum draws from the global generator, in the same order as the image's own generator
        torch.manual_seed(xh.baselines.smoothgrad_seeds(xi, 3)[0])
        ref = NoiseTunnel(Saliency(model)).attribute(xi.clone().requires_grad_(True), target=yi, nt_type="smoothgrad",
                                                     nt_samples=6, nt_samples_batch_size=6, stdevs=sigma, abs=True)
    mine = xh.baselines.explain(model, xi, yi, "smoothgrad", nt_samples=6, seed=3)
    # the same noisy inputs and gradients: float32 rounding only
    assert torch.allclose(mine, ref.amax(1), rtol=0, atol=1e-5 * ref.abs().max().item())


class _NoiseRecorder(torch.nn.Module):
    """A model that records the noisy inputs SmoothGrad feeds it."""

    def __init__(self, model):
        super().__init__()
        self.model, self.seen = model, []

    def forward(self, x):
        if x.requires_grad:
            self.seen.append(x.detach().clone())
        return self.model(x)


def _noise(model, x, y, samples=4, **settings):
    rec = _NoiseRecorder(model).eval()
    xh.baselines.explain(rec, x, y, "smoothgrad", nt_samples=samples, nt_samples_batch_size=samples, **settings)
    noisy = torch.cat(rec.seen).view(len(x), samples, *x.shape[1:])
    return noisy - x[:, None]  # (N, samples, 3, H, W): sigma x eps of each image


def test_smoothgrad_draws_independent_noise_per_image(cnn):
    # finding 5 of issue 32: one set of draws was shared by every image of a batch, so
    # the batch's maps were not independent samples; each image now has its own stream
    model, x, y = cnn
    eps = _noise(model, x[:3], y[:3])
    flat = (eps / eps.flatten(1).std(1)[:, None, None, None, None]).flatten(1)
    r = torch.corrcoef(flat)
    off = r[~torch.eye(3, dtype=torch.bool)]
    # independent N(0, 1) draws of 4 x 3 x 64 x 64 values correlate at about 1/sqrt(49152) = 0.005;
    # the shared draws of the old code correlated at 1 exactly
    assert off.abs().max() < 0.05
    # the noise of image 0 depends on image 0 and the seed, not on its batch mates or its position
    again = _noise(model, torch.cat([x[2:3], x[1:2], x[:1]]), torch.cat([y[2:3], y[1:2], y[:1]]))
    assert torch.allclose(again[2], eps[0], rtol=0, atol=1e-6)
    other = _noise(model, x[:1], y[:1], seed=1)
    assert (other[0] - eps[0]).abs().max() > 0.1 * eps[0].abs().max()  # the seed matters
    # per-image seeds given explicitly are used as given: two images, one seed, the same draws (scaled per image)
    same = _noise(model, x[:2], y[:2], seed=[7, 7])
    s0, s1 = (same[i] / same[i].flatten().std() for i in range(2))
    assert torch.allclose(s0, s1, rtol=0, atol=1e-3)
