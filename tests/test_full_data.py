"""The loaders of the full-scale paths (Imagenette / Imagewoof, CIFAR-100) on small fixtures in the real
on-disk formats: fast.ai's folder tree and archive, and the pickled Python release of CIFAR-100."""

import pickle
import tarfile
import urllib.error

import numpy as np
import pytest
from PIL import Image

from xaihelpers import folders


def test_imagenette_and_imagewoof_ids_name_the_imagenet_classes():
    # bug caught: an off-by-one class index, which would score every photo against the wrong class
    # (checked against torchvision's own list of ImageNet category names)
    from torchvision.models._meta import _IMAGENET_CATEGORIES as names

    nette = ["tench", "English springer", "cassette player", "chain saw", "church", "French horn",
             "garbage truck", "gas pump", "golf ball", "parachute"]
    woof = ["Shih-Tzu", "Rhodesian ridgeback", "beagle", "English foxhound", "Border terrier",
            "Australian terrier", "golden retriever", "Old English sheepdog", "Samoyed", "dingo"]
    assert [names[i] for i in folders.IMAGENETTE_CLASSES.values()] == nette
    assert [names[i] for i in folders.IMAGEWOOF_CLASSES.values()] == woof


def _imagenette_tree(root, per_class=2):
    for split in ("train", "val"):
        for k, wnid in enumerate(("n01440764", "n03888605")):
            d = root / split / wnid
            d.mkdir(parents=True)
            for j in range(per_class):
                Image.fromarray(np.full((40, 60, 3), 10 * k + j, np.uint8)).save(d / f"{wnid}_{j}.JPEG")


def test_imagenette_reads_fastais_layout_with_imagenet_labels(tmp_path):
    _imagenette_tree(tmp_path)
    pf = folders.imagenette(tmp_path, "val")
    assert len(pf) == 4 and pf.labels == ("0", "0", "701", "701")
    assert pf.image(3).size == (60, 40)
    drawn = folders.imagenette(tmp_path, "val", n=2, seed=1)
    assert len(drawn) == 2 and set(drawn.paths) <= set(pf.paths)
    with pytest.raises(FileNotFoundError, match="train,val"):
        folders.imagenette(tmp_path / "missing")
    (tmp_path / "val" / "n99999999").mkdir()
    with pytest.raises(ValueError, match="n99999999"):
        folders.imagenette(tmp_path, "val")


def test_download_unpacks_a_cached_archive_and_names_the_cache_offline(tmp_path, monkeypatch):
    src = tmp_path / "src"
    _imagenette_tree(src / "imagenette2-160", per_class=1)
    cache = tmp_path / "cache"
    cache.mkdir()
    with tarfile.open(cache / "imagenette2-160.tgz", "w:gz") as tar:  # fast.ai's archive: one top folder
        tar.add(src / "imagenette2-160", arcname="imagenette2-160")

    def offline(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr("urllib.request.urlretrieve", offline)
    root = folders.download_fastai("imagenette2-160", cache)  # the archive is there: no download
    assert root == cache / "imagenette2-160" and len(folders.imagenette(root)) == 2
    assert folders.download_fastai("imagenette2-160", cache) == root  # unpacked: used as it is
    with pytest.raises(FileNotFoundError, match=str(cache)):  # offline and not cached: say where to put it
        folders.download_fastai("imagewoof2-320", cache)
    monkeypatch.setenv("XAI_DATA", str(tmp_path / "env"))
    assert folders.data_cache() == tmp_path / "env"


def _cifar_files(base, n=5):
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    hwc = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    # the release stores each image as 1024 red, then 1024 green, then 1024 blue bytes, rows first
    rows = np.concatenate([hwc[..., c].reshape(n, 1024) for c in range(3)], axis=1)
    labels = [3, 99, 0, 42, 7][:n]
    with open(base / "test", "wb") as f:
        pickle.dump({"data": rows, "fine_labels": labels, "coarse_labels": [0] * n, "filenames": ["x"] * n}, f, protocol=2)
    with open(base / "meta", "wb") as f:
        pickle.dump({"fine_label_names": [f"class{i}" for i in range(100)], "coarse_label_names": []}, f, protocol=2)
    return hwc, labels


def test_cifar100_reads_the_python_release(tmp_path):
    # bug caught: reading the rows as height x width x channel, which scrambles every image
    hwc, labels = _cifar_files(tmp_path / "cifar-100-python")
    data = folders.cifar100(tmp_path)
    assert data.images.shape == (5, 3, 32, 32) and data.images.dtype.is_floating_point is False
    assert data.labels.tolist() == labels and data.classes[99] == "class99"
    i, y, x = 1, 17, 5  # one pixel by hand: its red, green and blue bytes
    assert data.images[i, :, y, x].tolist() == hwc[i, y, x].tolist()
    with pytest.raises(FileNotFoundError, match="train"):
        folders.cifar100(tmp_path, "train")
    with pytest.raises(ValueError):
        folders.cifar100(tmp_path, "val")


def test_chapter5_folder_path_runs_on_an_imagenette_fixture(tmp_path):
    # chapter 5's FULL cell for Imagenette, offline: the fixture in fast.ai's layout, read by xh.folders.imagenette, batched
    # with the classifier's preprocessing and run through xh.actmatch.smallest_explanations, as the cell does
    # (tiny mask networks and two steps instead of the lab's settings)
    import torch

    from xaihelpers import actmatch, models

    _imagenette_tree(tmp_path)
    net, prep, _ = models.load_model("efficientnet_lite0", device="cpu")
    pf = folders.imagenette(tmp_path, "val", n=2, seed=0)
    x = pf.batch(prep)
    target = torch.tensor([int(c) for c in pf.labels])
    table = actmatch.smallest_explanations(net, x, target, steps=2, widths=(4, 8), bottleneck=8, verbose=False,
                                           areas=(0.1, 0.5))
    assert list(table["target"]) == target.tolist() and len(table) == 2
    assert table["area at 0.5"].between(0, 1).all()
    for col in ("smallest share, soft mask", "smallest share, random pixels"):  # one of the two shares, or none
        shares = table[col].dropna()
        assert (((shares - 0.1).abs() < 0.01) | ((shares - 0.5).abs() < 0.01)).all(), table
