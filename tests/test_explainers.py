"""The one explainer contract: every method of the book by name, maps (N, h, w) on x's device."""

import pytest
import torch
from xaihelpers import actmatch, benchmark_models, explainers, models, srd

#: settings that keep each method cheap on the benchmark CNN (the defaults elsewhere)
FAST = {
    "integrated_gradients": {"n_steps": 4},
    "smoothgrad": {"nt_samples": 3},
    "occlusion": {"window": 16, "stride": 16},
    "gfi": {"iterations": 3, "stage1_iterations": 1},
    "mask": {"iterations": 3},
    "causal": {"iters": 1, "step": 0.1},
    "actmatch": {"steps": 2, "widths": (4, 8), "bottleneck": 8},
}


@pytest.fixture(scope="module")
def setting():
    torch.manual_seed(0)
    cnn = benchmark_models.BenchmarkCNN("relu").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        pred = cnn(x).argmax(1)
    torch.manual_seed(1)
    net = actmatch.MaskNet((4, 8), 8).eval()
    return cnn, x, pred, net


def _get(name, net):
    settings = dict(FAST.get(name, {}))
    if name == "actmatch_amortised":
        settings["net"] = net
    return explainers.get(name, **settings)


@pytest.mark.parametrize("name", explainers.names())
def test_every_method_keeps_the_contract_and_honours_the_target(setting, name):
    cnn, x, pred, net = setting
    fn = _get(name, net)
    maps = fn(cnn, x, pred)
    assert isinstance(maps, torch.Tensor) and maps.dtype == torch.float32 and maps.device == x.device
    assert maps.ndim == 3 and len(maps) == len(x) and 64 % maps.shape[-1] == 0 and maps.shape[-1] == maps.shape[-2]
    assert torch.isfinite(maps).all()
    # target=None explains the predicted class
    assert torch.allclose(fn(cnn, x, None), maps, atol=1e-6), "target=None must mean the predicted class"
    other = fn(cnn, x, (pred + 1) % 10)
    if explainers.uses_target(name):
        assert not torch.allclose(other, maps, atol=1e-6), "another class must give another map"
    else:
        assert torch.equal(other, maps)


def test_registry_calls_the_modules_explain(setting):
    cnn, x, pred, _ = setting
    assert torch.allclose(explainers.get("srd_input")(cnn, x, pred), srd.explain(cnn, x, pred, layer="input"))
    high = explainers.get("srd_high")(cnn, x, pred)
    assert torch.allclose(high, srd.explain(cnn, x, pred, layer=models.default_layer(cnn, "middle")))
    low = explainers.get("srd_low")(cnn, x, pred)
    assert low.shape[-1] < high.shape[-1] < 64
    # settings fixed by get, then overridden by the call
    fn = explainers.get("occlusion", window=16, stride=16)
    assert not torch.allclose(fn(cnn, x, pred), fn(cnn, x, pred, window=32, stride=32))


def test_names_titles_and_errors(setting):
    cnn, x, pred, net = setting
    assert len(set(explainers.names())) == len(explainers.names())
    for name in ("gfi", "mask", "srd_input", "causal", "actmatch", "saliency", "gradcam"):
        assert name in explainers.names()
    assert explainers.get("causal", rule="majority").__name__ == "causal, ConvAD (majority)"
    assert "03_sharing_ratio_decomposition" in explainers.describe("srd_low")
    with pytest.raises(ValueError, match="names"):
        explainers.get("deeplift")
    with pytest.raises(TypeError, match="MaskNet"):
        explainers.get("actmatch_amortised")
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        explainers.get("saliency")(cnn, x[0], pred)
