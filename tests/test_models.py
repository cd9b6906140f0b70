import socket

import pytest
import torch
from PIL import Image

import xaihelpers as xh
from xaihelpers import benchmark_models, models

CAT_CLASSES = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def test_load_model_returns_eval_model_preprocess_and_classes(lite0):
    model, preprocess, classes = lite0
    assert not model.training
    assert len(classes) == 1000 and classes[967] == "espresso"
    assert classes == models.imagenet_classes()
    img = Image.new("RGB", (320, 240), (120, 30, 200))
    x = preprocess(img)
    assert x.shape == (3, 224, 224)
    back = preprocess.denormalize(x[None])
    assert back.shape == (1, 224, 224, 3)
    assert abs(back[0, 100, 100, 0] - 120 / 255) < 2 / 255


def test_lite0_recognises_the_sample_photos(lite0):
    model, preprocess, classes = lite0
    photos = xh.sample_images(["coffee", "chelsea"])
    x = xh.data.to_batch(photos.values(), preprocess)
    top = models.predict(model, x, classes, k=1)
    assert top[0][0][1] == "espresso"
    assert top[1][0][0] in CAT_CLASSES


def test_lite0_has_the_published_size(lite0):
    n = sum(p.numel() for p in lite0.model.parameters())
    assert 4.6e6 < n < 4.7e6  # EfficientNet-Lite0 has 4.65 M parameters


@pytest.mark.parametrize("n,k,s", [(224, 3, 2), (225, 3, 2), (224, 5, 2), (57, 5, 2), (14, 3, 1), (7, 5, 1)])
def test_same_padding_gives_ceil_n_over_s(n, k, s):
    pad = models.SamePad2d(k, s)
    conv = torch.nn.Conv2d(1, 1, k, stride=s)
    out = conv(pad(torch.zeros(1, 1, n, n + 1)))
    assert out.shape[-2:] == (-(-n // s), -(-(n + 1) // s))


def test_default_layer_per_architecture(lite0):
    from torchvision.models import resnet18, vgg16

    assert models.default_layer(lite0.model) == "_act_head"
    assert models.default_layer(resnet18(weights=None)) == "layer4"
    vgg = vgg16(weights=None)
    name = models.default_layer(vgg)
    assert isinstance(vgg.get_submodule(name), torch.nn.ReLU)
    assert name == "features.29"


def test_unknown_model_name_is_a_clear_error():
    with pytest.raises(ValueError, match="efficientnet_lite0"):
        xh.load_model("alexnet")
    with pytest.raises(TypeError):
        xh.load_model(18)


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """An empty torch cache and a network that refuses every connection."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def refuse(*args, **kwargs):
        raise OSError("network is unreachable (simulated)")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return tmp_path / "torch"


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "vgg16", "vgg19"])
def test_online_models_fail_offline_with_the_cache_path(no_network, name):
    path = models.torchvision_weights_path(name)
    assert str(path).startswith(str(no_network))
    with pytest.raises(models.WeightsUnavailableError) as info:
        xh.load_model(name, device="cpu")
    message = str(info.value)
    assert str(path) in message and "download" in message


def test_online_model_loads_from_a_filled_cache(no_network):
    from torchvision.models import resnet18

    path = models.torchvision_weights_path("resnet18")
    path.parent.mkdir(parents=True)
    reference = resnet18(weights=None)
    torch.save(reference.state_dict(), path)
    model, preprocess, classes = xh.load_model("resnet18", device="cpu")
    assert len(classes) == 1000 and preprocess.mean == models.IMAGENET_MEAN
    x = torch.randn(2, 3, 64, 64)
    assert torch.allclose(model(x), reference.eval()(x), atol=1e-5)


def test_one_default_layer_picker_for_every_role(lite0):
    """The documented layer of each role, on the four architectures of the book."""
    import torchvision

    nets = {"lite0": lite0[0], "resnet18": torchvision.models.resnet18(num_classes=10),
            "vgg16": torchvision.models.vgg16(num_classes=10), "vgg19": torchvision.models.vgg19(num_classes=10),
            "bench": benchmark_models.BenchmarkCNN("relu")}
    expected = {"lite0": ("_act_head", "_act_head", "_blocks.4"), "resnet18": ("layer4", "layer4", "layer2"),
                "vgg16": ("features.29", "features.30", "features.16"),
                "vgg19": ("features.35", "features.36", "features.18"),  # pool5 is GFI's layer in the authors' code
                "bench": ("features.res2", "features.res2", "features.res1")}
    for key, net in nets.items():
        got = tuple(models.default_layer(net, role) for role in models.LAYER_ROLES)
        assert got == expected[key], key
        for name in got:
            net.get_submodule(name)  # each is a real module
    with pytest.raises(ValueError, match="role"):
        models.default_layer(nets["bench"], "deepest")
