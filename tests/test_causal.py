"""Causal responsibility (ReX's algorithm), the robustness measures, and the photo-folder loaders."""

import numpy as np
import pytest
import torch
from PIL import Image

from xaihelpers import benchmark_models, causal, causal_study, folders, models, occlusion


def _square_oracle(r0=8, r1=16, c0=40, c1=48, k=3):
    """A 'model' that predicts class 1 exactly when the square [r0:r1, c0:c1] is fully visible."""

    def predict(masks):
        seen = masks[:, r0:r1, c0:c1].flatten(1).min(1).values > 0.5
        logits = torch.zeros(len(masks), k)
        logits[seen, 1] = 2.0
        logits[~seen, 0] = 2.0
        return logits

    return predict


def test_split_covers_the_box_exactly():
    rng = np.random.default_rng(0)
    kids = causal.split((0, 64, 0, 48), rng, 4)
    m = torch.stack([causal.boxes_mask([k], (64, 48)) for k in kids]).sum(0)
    assert len(kids) == 4 and torch.all(m == 1)
    assert causal.split((0, 6, 0, 64), rng, 4) is None
    assert len(causal.SUBSETS) == 14


@pytest.mark.parametrize("style", causal.STYLES)
def test_responsibility_finds_the_cause_and_extraction_is_minimal(style):
    predict = _square_oracle()
    resp, q = causal.responsibility(predict, (64, 64), 1, iters=8, style=style, verbose=False)
    assert q > 0 and resp.max() == pytest.approx(1.0)
    inside = resp[8:16, 40:48].mean()
    assert inside > resp.mean() + 0.2  # the cause is where the responsibility is
    mask, conf, _ = causal.extract(predict, resp, 1, step=0.005)
    assert mask[8:16, 40:48].all() and conf > 0.5
    assert mask.mean() < 0.25  # far smaller than the image


def test_extract_ranks_exactly_and_breaks_ties_at_random():
    # the square's pixels lead the ranking by 1e-9, far less than the old 1e-6 jitter
    predict = _square_oracle(4, 8, 4, 8)
    resp = np.full((16, 16), 1.0 - 1e-9)
    resp[4:8, 4:8] = 1.0
    mask, _, _ = causal.extract(predict, resp, 1, step=1 / 256)
    assert mask.sum() == 16 and mask[4:8, 4:8].all()  # exactly the square, nothing more

    # all pixels tied: the ranking is a seeded random order, not the raster
    def enough(ms):  # class 0 once 64 pixels are visible
        n = ms.flatten(1).sum(1)
        return torch.stack([n >= 64, n < 64], 1).float()

    m, _, _ = causal.extract(enough, np.ones((16, 16)), 0, step=1 / 256)
    assert m.sum() == 64
    # raster order keeps rows 0-3 (mean 1.5); a random quarter of the pixels has mean row 7.5
    # with standard error 4.6 / sqrt(64) = 0.58: 7.5 +- 3 is over 5 of them
    assert abs(np.nonzero(m)[0].mean() - 7.5) < 3


def test_extract_returns_the_whole_image_when_nothing_suffices():
    never = lambda m: torch.tensor([[1.0, 0.0]]).expand(len(m), 2)  # noqa: E731
    mask, _, q = causal.extract(never, np.random.rand(16, 16), 1, step=0.1)
    assert mask.all() and q == 10


def test_explain_with_convad_and_painting_on_the_benchmark_cnn():
    torch.manual_seed(0)
    m = benchmark_models.BenchmarkCNN("relu").eval()
    x = torch.randn(2, 3, 64, 64)
    for how in ("convad", "zero"):
        out = causal.search(m, x, how=how, iters=1, step=0.05, verbose=False)
        assert len(out) == 2 and out[0].responsibility.shape == (64, 64) and out[0].mask.dtype == bool
        assert 0 < out[0].size <= 1 and out[0].queries > 0
    assert causal_study.null_class(m, x, "convad").shape == (2,)
    with pytest.raises(ValueError, match="style"):
        causal.responsibility(_square_oracle(), (64, 64), 1, style="max")


def test_survival_and_the_rho_table():
    torch.manual_seed(0)
    m = benchmark_models.BenchmarkCNN("relu").eval()
    x = torch.randn(3, 3, 64, 64)
    bg = occlusion.solid_backgrounds(4, (64, 64), lambda t: (t - 0.5) / 0.25)
    assert bg.shape == (4, 3, 64, 64) and bg.flatten(2).std(2).max() < 1e-6  # solid colours
    tex = occlusion.texture_backgrounds(3, (64, 64), lambda t: t)
    assert tex.shape == (3, 3, 64, 64) and tex.flatten(1).std(1).min() > 0.01  # textures vary
    full = np.ones((3, 64, 64), dtype=bool)
    s = causal_study.survival(m, x, full, torch.cat([bg, tex]), gammas=(0.0, 1.0))
    assert np.allclose(s, 1.0)  # the whole image planted anywhere is the image itself
    s0 = causal_study.survival(m, x, np.zeros((3, 64, 64)), bg, gammas=(0.0, 0.5))
    assert ((s0 >= 0) & (s0 <= 1)).all() and (s0[:, 1] <= s0[:, 0]).all()
    table = causal_study.rho_table({"a": s0, "b": s[:, :1].repeat(2, 1)}, gammas=(0.0, 0.5))
    for g in (0.0, 0.5):
        assert (np.diff(table.loc[g, "a"].to_numpy()) <= 1e-12).all()  # robust at rho implies at smaller rho
    assert (table["b"] == 1).all()
    with pytest.raises(ValueError, match="masks of shape"):
        occlusion.plant(x, np.ones((2, 64, 64)), bg)
    with pytest.raises(ValueError, match="masks of shape"):
        causal_study.survival(m, x, np.ones((2, 64, 64)), bg)


@pytest.mark.parametrize("how", ["convad", "zero", "blur"])
def test_null_class_in_one_batch_equals_one_query_per_image(how):
    from xaihelpers import convad

    torch.manual_seed(0)
    m = benchmark_models.BenchmarkCNN("relu").eval()
    x = torch.randn(3, 3, 64, 64)
    per_image = [int(convad.predict_masked(m, x[i:i + 1], torch.zeros(1, 64, 64), how).argmax()) for i in range(3)]
    assert causal_study.null_class(m, x, how).tolist() == per_image


def test_typicality_scale_and_shrinkage():
    g = torch.Generator().manual_seed(0)
    ref, same = torch.randn(200, 16, generator=g) + 3, torch.randn(100, 16, generator=g) + 3
    assert 0.7 < np.median(causal_study.typicality(ref, same)) < 1.4
    assert np.median(causal_study.typicality(ref, same * 0.3)) > 2  # shrunk towards 0: off the distribution
    with pytest.raises(ValueError, match="features"):
        causal_study.typicality(ref, torch.randn(3, 8))


def test_penultimate_features_shapes():
    m = benchmark_models.BenchmarkCNN("relu").eval()
    x = torch.randn(3, 3, 64, 64)
    clean = causal_study.penultimate_features(m, x)
    masked = causal_study.penultimate_features(m, x, torch.ones(3, 64, 64), "convad")
    assert clean.shape[0] == 3 and torch.allclose(clean, masked, atol=1e-5)  # the theorem, one layer early


def _jpeg(path, colour=(200, 30, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), colour).save(path)


def _voc_xml(path, name):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<annotation><size><width>40</width><height>30</height></size><object><name>{name}</name>"
                    "<bndbox><xmin>1</xmin><ymin>2</ymin><xmax>20</xmax><ymax>25</ymax></bndbox></object></annotation>")


def test_photo_folders_in_three_layouts(tmp_path):
    v2 = tmp_path / "v2"
    for cls in (0, 7, 999):
        _jpeg(v2 / str(cls) / f"a{cls}.jpeg")
    f = folders.photo_folder(v2, "imagenet_v2")
    assert f.labels == ("0", "7", "999") and len(f) == 3
    cal = tmp_path / "256_ObjectCategories"
    _jpeg(cal / "001.ak47" / "001_0001.jpg"), _jpeg(cal / "002.american-flag" / "002_0001.jpg")
    f = folders.photo_folder(cal, "caltech256", n=1, seed=0)
    assert len(f) == 1 and f.labels[0] in ("ak47", "american-flag")
    voc = tmp_path / "VOC2012"
    for stem, name in (("2008_000001", "dog"), ("2008_000002", "car")):
        _jpeg(voc / "JPEGImages" / f"{stem}.jpg"), _voc_xml(voc / "Annotations" / f"{stem}.xml", name)
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    (voc / "ImageSets" / "Main" / "val.txt").write_text("2008_000002\n")
    f = folders.photo_folder(voc, "voc")
    assert f.labels == ("car",)
    assert folders.photo_folder(voc, "voc", split="train").labels == ("dog", "car")  # no list: every annotated photo
    batch = f.batch(models.Preprocess(size=32, resize=36))
    assert batch.shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match="layout"):
        folders.photo_folder(voc, "coco")
    with pytest.raises(FileNotFoundError, match="JPEGImages"):
        folders.photo_folder(v2, "voc")
    with pytest.raises(FileNotFoundError, match="no photos"):
        folders.photo_folder(tmp_path / "256_ObjectCategories" / "001.ak47", "caltech256")


def test_survival_in_the_restricted_model_ignores_the_background():
    """Lemma 3.1's setting: judged by ConvAD with the explanation's mask, a planted image's label
    cannot depend on the background, so each explanation survives on all backgrounds or on none,
    and on all exactly when ConvAD alone keeps the label."""
    torch.manual_seed(0)
    m = benchmark_models.BenchmarkCNN("relu").eval()
    x = torch.randn(4, 3, 64, 64)
    masks = np.zeros((4, 64, 64), dtype=bool)
    for i in range(4):
        masks[i, 8 * i : 8 * i + 30, 10:50] = True
    bg = torch.cat([occlusion.solid_backgrounds(5, (64, 64), lambda t: (t - 0.5) / 0.25), torch.randn(5, 3, 64, 64) * 2])
    target = torch.tensor([0, 1, 2, 3])
    s = causal_study.survival(m, x, masks, bg, target, gammas=(0.0,), rule="lenient")[:, 0]
    from xaihelpers.convad import ConvAD

    with torch.no_grad():
        alone = ConvAD(m, "lenient")(x, torch.as_tensor(masks, dtype=x.dtype)).argmax(1) == target
    assert np.array_equal(s, alone.numpy().astype(float))
    with torch.no_grad():  # the plain network does look at the background
        planted = occlusion.plant(x[:1], masks[:1], bg)[0]
        assert (m(planted) - m(planted[:1])).abs().max() > 1e-3


def test_rex_crosscheck_record_is_consistent():
    per_image, summary, header = causal.rex_crosscheck_record()
    assert "rex-xai" in header and len(per_image) >= 8
    for col in per_image.columns:
        v = per_image[col].to_numpy()
        # the summary is the mean and standard error of the per-image rows (both printed to 2-3 decimals)
        assert summary.loc[col, "mean"] == pytest.approx(v.mean(), abs=0.006)
        assert summary.loc[col, "se"] == pytest.approx(v.std(ddof=1) / np.sqrt(len(v)), abs=0.006)


def test_chapter_4_gives_rex_default_number_of_trees_right():
    # Finding 7 of issue 32: chapter 4 called its 10 trees "ReX's default", which is 20 (rex-xai
    # 0.4.1, and this package's default); a different value must be called the book's choice
    import inspect
    import json
    from pathlib import Path

    nb = json.loads((Path(__file__).resolve().parents[1] / "notebooks" / "04_activation_deactivation.ipynb").read_text())
    params = next("".join(c["source"]) for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    line = next(ln for ln in params.splitlines() if ln.startswith("ITERS ="))
    value = int(line.split("=")[1].split("#")[0])
    rex = inspect.signature(causal.responsibility).parameters["iters"].default
    assert rex == 20
    assert value == rex or ("(ReX's default)" not in line and f"ReX's default is {rex}" in line)


def test_plant_follows_the_images_device():
    # catches masks or backgrounds left on the CPU while the images are on the GPU (chapter 5's
    # robustness table stopped on CUDA with "found at least two devices"); the meta device stands
    # in for a second device: mixing it with CPU tensors raises as CUDA does
    import numpy as np
    import torch

    from xaihelpers.occlusion import plant

    x = torch.zeros(2, 3, 8, 8, device="meta")
    for masks in (np.ones((2, 8, 8)), torch.ones(2, 8, 8)):
        out = plant(x, masks, torch.zeros(3, 3, 8, 8))
        assert out.shape == (2, 3, 3, 8, 8) and out.device.type == "meta"
