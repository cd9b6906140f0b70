"""The explorer of chapters 0 and 6, driven through its widgets' callbacks without a browser.

Two models (the offline EfficientNet-Lite0 and the benchmark ReLU CNN) and three
methods (the vanilla gradient of captum, the book's Grad-CAM, SRD-input), plus every
method of the registry once on the small benchmark CNN with its main setting moved off
its default.
"""

from __future__ import annotations

import datetime
import io
import urllib.error

import numpy as np
import pytest
import torch
from PIL import Image

import xaihelpers as xh
from xaihelpers import explainers, explorer, metrics, models

ipywidgets = pytest.importorskip("ipywidgets")

MODELS = ("efficientnet_lite0", "fmnist_cnn_relu")
METHODS = ("saliency", "grad_cam", "srd_input")


@pytest.fixture(scope="module")
def loaded(lite0):
    """Both models, loaded once for every explorer of this module."""
    return {"efficientnet_lite0": lite0, "fmnist_cnn_relu": xh.load_model("fmnist_cnn_relu", device="cpu")}


@pytest.fixture
def calls(monkeypatch):
    """Every call of ``xaihelpers.explainers.get`` (name, settings) and of the function it returns."""
    record = {"get": [], "explain": 0}
    real = explainers.get

    def get(name, **settings):
        record["get"].append((name, settings))
        fn = real(name, **settings)

        def counted(*args, **kwargs):
            record["explain"] += 1
            return fn(*args, **kwargs)

        return counted

    monkeypatch.setattr(explainers, "get", get)
    return record


def make(loaded, model="efficientnet_lite0", photo="coffee", method="saliency") -> explorer.Explorer:
    ex = explorer.Explorer(model, photo=photo, method=method, device="cpu", loaded=loaded)
    ex.panel()
    return ex


def uploaded(name: str, content: bytes, kind: str) -> tuple:
    """What ipywidgets' FileUpload holds after the reader chose one file."""
    return ({"name": name, "type": kind, "size": len(content), "content": memoryview(content),
             "last_modified": datetime.datetime.now(datetime.timezone.utc)},)


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def test_every_method_of_the_registry_is_offered_with_one_setting():
    offered = explorer.methods()
    assert set(offered) | set(explorer.LEFT_OUT) == set(explainers.names())
    assert set(explorer.MAIN_SETTINGS) == set(offered), "a new method needs its main setting in MAIN_SETTINGS"
    for name in offered:
        assert (", slow" in explorer.method_label(name)) == (name in explorer.SLOW)
    assert set(explorer.SLOW) <= set(offered)


def test_nothing_is_computed_before_the_button_is_pressed(loaded, calls):
    ex = make(loaded)
    w = ex.widgets
    w["photo"].value = "chelsea"
    w["model"].value = "fmnist_cnn_relu"
    w["method"].value = "gradcam"
    ex.widgets["setting"].value = "features.res1"
    w["target"].value = w["target"].options[1][1]
    w["method"].value = "gfi"
    ex.widgets["setting"].value = 20
    w["model"].value = "efficientnet_lite0"
    assert calls["get"] == [] and calls["explain"] == 0 and ex.computed == 0 and ex.result is None
    w["run"].click()
    assert calls["explain"] == 1 and ex.computed == 1
    assert calls["get"] == [("gfi", {"iterations": 20})]
    assert ex.result["method"] == "gfi" and ex.result["model"] == "efficientnet_lite0"


def test_top5_follows_the_photo_and_the_model(loaded):
    ex = make(loaded)
    w = ex.widgets

    def offered():
        return [value for _, value in w["target"].options]

    def predicted(name):
        m = loaded[name]
        x = xh.data.to_batch(xh.sample_images([ex.photo])[ex.photo], m.preprocess)
        return [i for i, _, _ in models.predict(m.model, x, m.classes, k=5)[0]]

    assert offered() == predicted("efficientnet_lite0") and w["target"].value == offered()[0]
    w["model"].value = "fmnist_cnn_relu"
    assert offered() == predicted("fmnist_cnn_relu") and set(offered()) <= set(range(10))
    assert all(label.startswith(loaded["fmnist_cnn_relu"].classes[i]) for label, i in w["target"].options)
    assert ex.target == offered()[0]
    w["photo"].value = "rocket"
    assert offered() == predicted("fmnist_cnn_relu")
    w["model"].value = "efficientnet_lite0"
    assert offered() == predicted("efficientnet_lite0")


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("method", METHODS)
def test_the_button_gives_the_map_the_top5_after_deletion_and_the_time(loaded, calls, model, method):
    ex = make(loaded, model=model, method=method)
    ex.widgets["run"].click()
    assert calls["explain"] == 1
    r = ex.result
    m = loaded[model]
    x = xh.data.to_batch(xh.sample_images(["coffee"])["coffee"], m.preprocess)
    h, w = x.shape[-2:]
    assert r["map"].shape == (h, w) and r["deleted"].shape == (h, w)
    # the deletion removes exactly 10 % of the pixels, those the map ranks highest
    assert r["deleted"].sum() == round(0.1 * h * w)
    assert r["map"][r["deleted"]].min() >= r["map"][~r["deleted"]].max()
    # the map is the method's, resized to the photo; the top-5s are the model's before and after
    expect = metrics.resize_maps(explainers.get(method, **r["settings"])(m.model, x, r["target"]), (h, w))
    assert np.allclose(r["map"], expect[0].numpy(), rtol=1e-4, atol=1e-6 * float(expect.abs().max()))
    x_del = x * torch.from_numpy(~r["deleted"]).float()
    after = models.predict(m.model, x_del, m.classes, k=5)[0]
    assert [i for i, _, _ in r["top5_after"]] == [i for i, _, _ in after]
    assert np.allclose([p for _, _, p in r["top5_after"]], [p for _, _, p in after], atol=1e-5)
    assert [i for i, _, _ in r["top5_before"]] == [value for _, value in ex.widgets["target"].options]
    assert r["p_before"] == pytest.approx(r["top5_before"][0][2], abs=1e-5)
    assert 0 < r["seconds"] < 60
    assert list(r["table"].columns) == ["top-5", "after deleting the top 10%"] and len(r["table"]) == 5
    assert len(r["figure"].axes) >= 3 and f"{r['seconds']:.2f} s" in r["figure"]._suptitle.get_text()


@pytest.mark.parametrize("model", MODELS)
def test_another_class_or_layer_gives_another_map(loaded, model):
    ex = make(loaded, model=model, method="grad_cam")
    w = ex.widgets
    w["run"].click()
    first = ex.result["map"]
    w["target"].value = w["target"].options[1][1]
    w["run"].click()
    second = ex.result["map"]
    assert ex.result["target"] == w["target"].options[1][1]
    assert not np.allclose(first, second, atol=1e-3 * np.abs(first).max())
    layers = w["setting"].options
    w["setting"].value = layers[len(layers) // 2][1]
    w["run"].click()
    assert ex.result["settings"]["layer"] == layers[len(layers) // 2][1]
    assert not np.allclose(second, ex.result["map"], atol=1e-3 * np.abs(second).max())


def test_an_upload_that_is_not_an_image_gives_a_message(loaded, calls):
    ex = make(loaded)
    before = list(ex.widgets["target"].options)
    for content in (b"a text file, not a photo", b""):
        ex.widgets["upload"].value = uploaded("notes.txt", content, "text/plain")
        assert "notes.txt" in ex.message and ("not an image" in ex.message or "empty" in ex.message)
        assert "stays 'coffee'" in ex.message
        assert ex.photo == "coffee" and list(ex.widgets["target"].options) == before
        assert "notes.txt" in ex.widgets["message"].value
    with pytest.raises(ValueError, match="notes.txt"):
        explorer.read_upload(b"%PDF-1.4", "notes.txt")
    assert calls["explain"] == 0


def test_an_uploaded_photo_is_offered_classified_and_explained(loaded):
    ex = make(loaded)
    cat = xh.sample_images(["chelsea"])["chelsea"].image.resize((300, 200))
    content = png_bytes(cat)
    ex.widgets["upload"].value = uploaded("my cat.png", content, "image/png")
    assert ex.photo == "upload: my cat.png" and ex.widgets["photo"].value == ex.photo
    m = loaded["efficientnet_lite0"]
    top = models.predict(m.model, xh.data.to_batch(cat, m.preprocess), m.classes, k=5)[0]
    assert [value for _, value in ex.widgets["target"].options] == [i for i, _, _ in top]
    ex.widgets["run"].click()
    assert ex.result["photo"] == "upload: my cat.png" and ex.result["map"].shape == (224, 224)


@pytest.mark.parametrize("method", explorer.methods())
def test_the_setting_widget_matches_the_method_and_reaches_it(loaded, calls, method):
    """Each method's widget is its main setting; a value off the default is what the method is called with."""
    ex = make(loaded, model="fmnist_cnn_relu", method="saliency")
    ex.widgets["method"].value = method
    widget = ex.widgets["setting"]
    spec = explorer.MAIN_SETTINGS[method]
    cnn = loaded["fmnist_cnn_relu"].model
    if spec is None:
        assert isinstance(widget, ipywidgets.Label) and ex.setting() is None
        value = None
    elif spec.kind == "int":
        assert isinstance(widget, ipywidgets.IntSlider) and widget.description == spec.name
        assert widget.value == (spec.default if spec.default is not None else 64 // 8)
        value = widget.max if method == "occlusion" else widget.min  # the cheap end
    else:
        assert isinstance(widget, ipywidgets.Dropdown) and widget.description == spec.name
        values = [v for _, v in widget.options]
        if spec.kind == "layer":
            assert values == explorer.feature_layers(cnn, 64) and widget.value == models.default_layer(cnn)
        else:
            assert values == list(spec.options) and widget.value == spec.default
        value = values[values.index(widget.value) - 1]  # for a layer, the one before (CAM needs the head's width)
    if value is not None:
        widget.value = value
    assert calls["explain"] == 0
    ex.widgets["run"].click()
    assert ex.result is not None, ex.message
    expected = {**explorer.FIXED.get(method, {}), **({spec.name: value} if spec else {})}
    assert calls["get"] == [(method, expected)] and calls["explain"] == 1
    assert ex.result["map"].shape == (64, 64)


def test_feature_layers_are_feature_maps_in_forward_order(loaded):
    for name, (model, prep, _) in loaded.items():
        layers = explorer.feature_layers(model, prep.size)
        assert models.default_layer(model) in layers and models.default_layer(model, "middle") in layers
        with torch.no_grad(), xh.record(model, layers) as rec:
            model(torch.zeros(1, 3, prep.size, prep.size))
        assert list(rec.activations) == layers  # recorded in the order they ran
        assert all(a.ndim == 4 and a.shape[2] * a.shape[3] > 1 for a in rec.activations.values())
        kinds = (torch.nn.Conv2d, torch.nn.BatchNorm2d, torch.nn.Sequential)
        assert not any(isinstance(model.get_submodule(n), kinds) for n in layers)


def test_an_online_model_that_cannot_be_downloaded_shows_the_error(loaded, monkeypatch):
    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("no network in this test")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    ex = make(loaded)
    assert "downloads its weights" in dict((v, k) for k, v in ex.widgets["model"].options)["resnet18"]
    ex.widgets["model"].value = "resnet18"
    assert "resnet18" in ex.message and "could not load the ImageNet weights" in ex.message
    assert ex.widgets["target"].options == () and ex.target is None
    assert ex.press() is None and "WeightsUnavailableError" in ex.message
    ex.widgets["model"].value = "efficientnet_lite0"
    assert ex.target == 967  # back on the offline model: the espresso of chapter 0


def test_bad_choices_are_refused():
    with pytest.raises(ValueError, match="method"):
        explorer.Explorer(method="no such method", device="cpu")
    with pytest.raises(ValueError, match="photo"):
        explorer.Explorer(photo="no such photo", device="cpu")


def test_pictures_given_to_the_explorer_are_offered(loaded):
    small = np.asarray(xh.sample_images(["chelsea"])["chelsea"].image.resize((64, 64)))
    ex = explorer.Explorer("fmnist_cnn_relu", photo="small cat", method="srd_input", device="cpu", loaded=loaded,
                           photos={"small cat": small})
    assert ex.photos[-1] == "small cat" and ex.photos[: len(xh.data.SAMPLE_NAMES)] == list(xh.data.SAMPLE_NAMES)
    assert ex.run()["map"].shape == (64, 64) and ex.computed == 1


def test_occlusion_window_follows_the_model(loaded):
    """The window's default is baselines.explain's, an eighth of the image side, for each model's input size."""
    ex = make(loaded, method="occlusion")
    assert (ex.widgets["setting"].value, ex.widgets["setting"].max) == (224 // 8, 224 // 2)
    ex.widgets["model"].value = "fmnist_cnn_relu"
    assert (ex.widgets["setting"].value, ex.widgets["setting"].max) == (64 // 8, 64 // 2)
    ex.widgets["setting"].value = 16
    ex.widgets["photo"].value = "rocket"
    assert ex.settings() == {"window": 16}  # a new photo keeps the reader's setting
