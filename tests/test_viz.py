import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from PIL import Image

from xaihelpers import viz


def test_to_image_accepts_the_usual_layouts():
    arr = np.random.default_rng(0).random((8, 9, 3)).astype(np.float32)
    for img in (arr, np.moveaxis(arr, -1, 0), torch.from_numpy(np.moveaxis(arr, -1, 0)),
                Image.fromarray((arr * 255).astype(np.uint8))):
        out = viz.to_image(img)
        assert out.shape == (8, 9, 3) and 0 <= out.min() and out.max() <= 1
    assert viz.to_image(np.zeros((5, 5))).shape == (5, 5, 3)
    with pytest.raises(ValueError):
        viz.to_image(np.zeros((2, 3, 4, 5)))
    with pytest.raises(TypeError):
        viz.to_image("image.png")


def test_overlay_draws_a_colour_bar_and_checks_shapes():
    fig, ax = plt.subplots()
    viz.overlay(ax, np.zeros((16, 16, 3)), np.random.rand(4, 4), title="t")
    assert len(fig.axes) == 2  # the map and its colour bar
    with pytest.raises(ValueError):
        viz.overlay(ax, None, np.random.rand(2, 4, 4))
    with pytest.raises(ValueError):
        viz.overlay(ax, None, np.random.rand(4, 4), alpha=2)
    plt.close(fig)


def test_grid_has_one_row_per_image_and_one_column_per_method():
    imgs = np.random.rand(3, 16, 16, 3)
    fig = viz.grid(imgs, {"a": np.random.rand(3, 16, 16), "b": torch.rand(3, 16, 16)}, row_titles=list("xyz"))
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(panels) == 9
    plt.close(fig)
    with pytest.raises(ValueError, match="one per image"):
        viz.grid(imgs, {"a": np.random.rand(2, 16, 16)})


def test_feature_maps_rows_are_layers():
    fig = viz.feature_maps({"l1": torch.rand(1, 5, 6, 6), "l2": torch.rand(1, 2, 3, 3)}, channels=3)
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(panels) == 6
    plt.close(fig)


def _lightness(name: str) -> np.ndarray:
    from skimage.color import rgb2lab

    rgb = plt.get_cmap(name)(np.linspace(0, 1, 64))[:, :3]
    return rgb2lab(rgb[None])[0, :, 0]


def test_heat_maps_use_colour_maps_that_survive_colour_blindness():
    # a colour-blind (or grey-scale) reader still reads lightness: a sequential map must grow
    # monotonically in CIELAB lightness, a diverging one must fall monotonically from its centre
    light = _lightness(viz.HEAT)
    assert (np.diff(light) > 0).all() and light[-1] - light[0] > 50
    assert not (np.diff(_lightness("jet")) > 0).all()  # the old default fails the same check
    assert (np.diff(_lightness(viz.SCORES)) > 0).all()
    signed = _lightness(viz.SIGNED)
    assert (np.diff(signed[:32]) > 0).all() and (np.diff(signed[32:]) < 0).all()
    fig, ax = plt.subplots(1, 2)
    assert viz.overlay(ax[0], None, np.random.rand(4, 4)).get_cmap().name == viz.HEAT
    assert viz.overlay(ax[1], None, np.random.rand(4, 4) - 0.5, symmetric=True).get_cmap().name == viz.SIGNED
    plt.close(fig)


def test_no_chapter_or_module_draws_with_an_unsafe_colour_map():
    import re

    from conftest import ROOT

    unsafe = {"jet", "bwr", "seismic", "rainbow", "gist_rainbow", "hsv", "RdYlGn", "Spectral", "nipy_spectral"}
    named = re.compile(r"cmap\s*=\s*\\?[\"']([\w]+)")
    for path in [*(ROOT / "xaihelpers").glob("*.py"), *(ROOT / "notebooks").glob("*.ipynb"), *(ROOT / "benchmarks").glob("*.py")]:
        used = {u for u in named.findall(path.read_text()) if u.removesuffix("_r") in unsafe}
        assert not used, f"{path.name} draws with {used}: use xh.viz.HEAT or xh.viz.SIGNED"


def test_show_code_prints_signature_and_body_without_the_docstring(capsys):
    from xaihelpers import srd

    viz.show_code(srd.propagate)
    out = capsys.readouterr().out
    assert out.startswith("# xaihelpers.srd.propagate\ndef propagate(mu: torch.Tensor, relevance: torch.Tensor) -> torch.Tensor:\n")
    assert "return mu @ relevance" in out and "Eqs. 7-8" not in out
    viz.show_code(srd.propagate, docstring=True)
    assert "Eqs. 7-8" in capsys.readouterr().out
