import numpy as np
import pytest
import torch
from PIL import Image

import xaihelpers as xh
from xaihelpers import data


def test_sample_images_are_named_rgb_photos_with_labels():
    photos = xh.sample_images()
    assert list(photos) == list(data.SAMPLE_NAMES)
    assert len(photos) >= 6
    for name, p in photos.items():
        assert p.name == name and p.image.mode == "RGB"
        assert min(p.image.size) >= 200
        assert all(0 <= i < 1000 for i in p.labels)
    assert photos["coffee"].label == 967
    assert photos["astronaut"].label is None
    sources = {p.source.split(":")[0] for p in photos.values()}
    assert sources == {"scikit-image", "matplotlib", "scikit-learn"}


def test_sample_images_subset_and_unknown():
    assert list(xh.sample_images(["rocket", "coffee"])) == ["rocket", "coffee"]
    assert list(xh.sample_images("coffee")) == ["coffee"]
    with pytest.raises(ValueError, match="unknown"):
        xh.sample_images(["dog"])


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "LA", "P", "1", "CMYK"])
def test_load_image_converts_supported_modes(tmp_path, mode):
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8))
    img = rgb.convert(mode)
    path = tmp_path / ("img.tiff" if mode == "CMYK" else "img.png")
    img.save(path)
    out = xh.load_image(path)
    assert out.mode == "RGB" and out.size == (30, 20)
    if mode == "RGB":
        assert np.array_equal(np.asarray(out), np.asarray(rgb))


def test_load_image_composites_transparency_on_white(tmp_path):
    img = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    img.putpixel((0, 0), (255, 0, 0, 255))
    img.save(tmp_path / "a.png")
    out = np.asarray(xh.load_image(tmp_path / "a.png"))
    assert tuple(out[0, 0]) == (255, 0, 0) and tuple(out[1, 1]) == (255, 255, 255)
    pal = Image.new("P", (2, 2), 0)
    pal.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    pal.putpixel((1, 1), 1)
    pal.info["transparency"] = 0
    pal.save(tmp_path / "p.png", transparency=0)
    out = np.asarray(xh.load_image(tmp_path / "p.png"))
    assert tuple(out[0, 0]) == (255, 255, 255) and tuple(out[1, 1]) == (10, 200, 30)


def test_load_image_refuses_what_it_cannot_convert(tmp_path):
    Image.fromarray(np.full((5, 5), 70000, dtype=np.int32)).save(tmp_path / "wide.tiff")  # 32-bit, beyond 16 bits
    with pytest.raises(ValueError, match="mode 'I'.*0..65535"):
        xh.load_image(tmp_path / "wide.tiff")
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match="cannot read"):
        xh.load_image(tmp_path / "notes.txt")
    with pytest.raises(FileNotFoundError):
        xh.load_image(tmp_path / "missing.png")
    with pytest.raises(TypeError):
        xh.load_image(42)


def test_to_batch_stacks_preprocessed_images():
    pre = xh.models.Preprocess(32, 36)
    photos = xh.sample_images(["coffee", "rocket"])
    x = data.to_batch(photos.values(), pre)
    assert x.shape == (2, 3, 32, 32) and x.dtype == torch.float32
    with pytest.raises(ValueError):
        data.to_batch([], pre)
    with pytest.raises(TypeError, match="image 1: .*got object"):
        data.to_batch([photos["coffee"], object()], pre)


def test_preprocess_box_by_hand():
    # a 400 x 300 photo: the shorter side to 256 (x 256/300), width round(341.3) = 341, centre crop 224
    # (left 58, top 16); box (100, 60, 210, 150) -> x 100 * 341/400 - 58 = 27.25, y 60 * 256/300 - 16 = 35.2,
    # x1 210 * 341/400 - 58 = 121.0, y1 150 * 256/300 - 16 = 112
    assert data.preprocess_box((100, 60, 210, 150), (400, 300)) == (27, 35, 121, 112)
    assert data.preprocess_box((0, 0, 400, 300), (400, 300)) == (0, 0, 224, 224)  # clipped to the crop
    with pytest.raises(ValueError):
        data.preprocess_box((10, 10, 5, 20), (400, 300))


def test_preprocess_box_lands_where_the_preprocessing_puts_the_pixels():
    # bug caught: a box moved by another geometry than the classifier's (e.g. a plain resize to 224)
    from PIL import Image

    from xaihelpers.models import Preprocess

    arr = np.zeros((300, 451, 3), np.uint8)
    box = (120, 40, 260, 230)
    arr[box[1]:box[3], box[0]:box[2]] = 255
    prep = Preprocess(224, 256, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    bright = prep(Image.fromarray(arr))[0] > 0.5
    ys, xs = np.nonzero(bright.numpy())
    seen = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    assert np.abs(np.subtract(seen, data.preprocess_box(box, (451, 300)))).max() <= 1, seen


def test_every_boxed_class_is_a_label_of_the_photo_or_in_the_classifiers_top5():
    # bug caught: a box stored under the wrong class index
    import torch

    from xaihelpers.models import load_model

    net, prep, _ = load_model("efficientnet_lite0")
    photos = xh.sample_images(list(data.PHOTO_BOXES))
    boxes = data.photo_boxes()
    for name, photo in photos.items():
        with torch.no_grad():
            top5 = set(net(prep(photo.image)[None])[0].topk(5).indices.tolist())
        assert set(data.PHOTO_BOXES[name]) <= set(photo.labels) | top5, name
        assert photo.labels[0] in boxes[name]  # the main object has its box in the crop
        for b in boxes[name].values():
            assert 0 <= b[0] < b[2] <= 224 and 0 <= b[1] < b[3] <= 224
            assert data.box_mask(b).sum() == (b[2] - b[0]) * (b[3] - b[1])


def test_photo_localisation_is_one_entry_per_boxed_class():
    loc = data.photo_localisation()
    pairs = [(n, c) for n, per in data.photo_boxes().items() for c in per]
    assert len(loc) == len(pairs) and loc.names == tuple(f"{n}/{c}" for n, c in pairs)
    assert loc.images.shape == (len(pairs), 3, 224, 224) and 0 <= loc.images.min() and loc.images.max() <= 1
    i = loc.names.index("camera/872")
    assert loc.labels[i] == 872 and tuple(loc.boxes[i].tolist()) == data.photo_boxes()["camera"][872]
    distinct = data.photo_localisation(one_per_box=True)
    assert len(distinct) == sum(len(set(per.values())) for per in data.photo_boxes().values())
    assert "coffee/967" in distinct.names and "coffee/968" not in distinct.names
