"""The loaders of the full-scale paths (Imagenette / Imagewoof, CIFAR-100) on small fixtures in the real
on-disk formats: fast.ai's folder tree and archive, and the pickled Python release of CIFAR-100."""

import pickle
import tarfile
import urllib.error

import numpy as np
import pytest
import torch
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


# ---------------------------------------------------------------- PASCAL VOC 2007 (chapter 3's pointing game, FULL)

def _voc_xml(size, objects):
    objs = "".join(f"<object><name>{c}</name><difficult>0</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
                   f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>" for c, b in objects)
    return (f"<annotation><folder>VOC2007</folder><size><width>{size[0]}</width><height>{size[1]}</height>"
            f"<depth>3</depth></size>{objs}</annotation>")


def _voc_tree(root):
    """VOCdevkit/VOC2007 as the test archive unpacks it: three photos, 1-based inclusive boxes."""
    for d in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / d).mkdir(parents=True)
    photos = {"000001": ((100, 50), [("cat", (11, 6, 30, 25)), ("person", (1, 1, 100, 50))]),
              "000002": ((100, 50), [("person", (1, 1, 50, 50))]),  # no ImageNet class: dropped
              "000004": ((80, 80), [("dog", (1, 1, 10, 10)), ("dog", (71, 71, 80, 80)), ("car", (21, 21, 40, 40))])}
    for stem, (wh, objs) in photos.items():
        Image.fromarray(np.full((wh[1], wh[0], 3), 100, np.uint8)).save(root / "JPEGImages" / f"{stem}.jpg")
        (root / "Annotations" / f"{stem}.xml").write_text(_voc_xml(wh, objs))
    (root / "ImageSets" / "Main" / "test.txt").write_text("\n".join(photos) + "\n")
    return root


def test_voc_classes_name_imagenet_classes_of_that_kind():
    # bug caught: an off-by-one index range (the dogs run from Chihuahua to Mexican hairless, the cats from tabby
    # to Egyptian cat), checked against torchvision's ImageNet category names
    from torchvision.models._meta import _IMAGENET_CATEGORIES as names

    assert [names[i] for i in folders.VOC_IMAGENET["cat"]] == ["tabby", "tiger cat", "Persian cat", "Siamese cat",
                                                                "Egyptian cat"]
    dogs = folders.VOC_IMAGENET["dog"]
    assert (names[dogs[0]], names[dogs[-1]], len(dogs)) == ("Chihuahua", "Mexican hairless", 118)
    assert names[151 - 1] not in [names[i] for i in dogs] and names[269] == "timber wolf"
    birds = [names[i] for i in folders.VOC_IMAGENET["bird"]]
    assert {"cock", "goldfinch", "bald eagle", "peacock", "goose", "flamingo", "king penguin", "albatross"} <= set(birds)
    assert "tench" not in birds and "European fire salamander" not in birds and "black swan" in birds
    assert "person" not in folders.VOC_IMAGENET and len(folders.VOC_IMAGENET) == 19
    every = [i for v in folders.VOC_IMAGENET.values() for i in v]
    assert len(every) == len(set(every)) and all(0 <= i < 1000 for i in every)


def test_voc_pointing_reads_the_boxes_as_masks(tmp_path):
    # bug caught: VOC's 1-based inclusive corners read as 0-based (every mask one pixel off), and one mask per box
    # instead of the union of a class's boxes
    root = _voc_tree(tmp_path / "VOCdevkit" / "VOC2007")
    s = folders.voc_pointing(root, size=100, verbose=False)
    assert s.names == ("000001/cat", "000004/car", "000004/dog") and s.classes == ("cat", "car", "dog")
    assert s.images.shape == (3, 3, 100, 100) and s.masks.dtype == torch.bool
    cat = torch.zeros(100, 100, dtype=torch.bool)
    cat[10:50, 10:30] = True  # columns 11-30 (1-based) at scale 1, rows 6-25 at scale 2 -> rows 10-49
    assert torch.equal(s.masks[0], cat)
    dog = torch.zeros(100, 100, dtype=torch.bool)
    dog[0:12, 0:12] = True  # pixels 1-10 of 80 -> 0..12.5 of 100
    dog[88:100, 88:100] = True  # pixels 71-80 -> 87.5..100
    assert (s.masks[2] ^ dog).sum() <= 2 * 12 * 2  # the two boxes, up to one row or column of rounding each
    assert s.masks[2][5, 5] and s.masks[2][95, 95] and not s.masks[2][50, 50]
    # the ImageNet class explained: the best-scoring class of the entry's VOC class, not the best overall
    logits = torch.zeros(3, 1000)
    logits[:, 0] = 10.0  # tench, the top class overall
    logits[0, 283], logits[1, 817], logits[2, 207] = 1.0, 2.0, 3.0  # Persian cat, sports car, golden retriever
    assert s.targets(logits).tolist() == [283, 817, 207]
    with pytest.raises(ValueError, match="1000"):
        s.targets(logits[:2])
    drawn = folders.voc_pointing(root, n=2, seed=0, verbose=False)  # two of the three photos, at most one without a class
    assert 1 <= len({k.split("/")[0] for k in drawn.names}) <= 2 and set(drawn.names) <= set(s.names)
    with pytest.raises(FileNotFoundError, match="ImageSets"):
        folders.voc_pointing(tmp_path)


def test_voc_and_cifar_downloads_use_the_cache_and_name_it_offline(tmp_path, monkeypatch):
    def offline(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr("urllib.request.urlretrieve", offline)
    cache = tmp_path / "cache"
    with pytest.raises(FileNotFoundError, match=str(cache)):
        folders.download_voc2007(cache)
    with pytest.raises(FileNotFoundError, match=str(cache)):
        folders.download_cifar100(cache)
    src = tmp_path / "src"
    _voc_tree(src / "VOCdevkit" / "VOC2007")
    with tarfile.open(cache / "VOCtest_06-Nov-2007.tar", "w") as tar:  # the archive's own top folder
        tar.add(src / "VOCdevkit", arcname="VOCdevkit")
    root = folders.download_voc2007(cache)
    assert root == cache / "VOCdevkit" / "VOC2007" and len(folders.voc_pointing(root, verbose=False)) == 3
    _cifar_files(src / "cifar-100-python")
    with tarfile.open(cache / "cifar-100-python.tar.gz", "w:gz") as tar:
        tar.add(src / "cifar-100-python", arcname="cifar-100-python")
    assert len(folders.cifar100(folders.download_cifar100(cache))) == 5


def test_chapter3_voc_path_runs_on_a_fixture(tmp_path):
    # chapter 3's VOC cell, offline: the fixture read by voc_pointing, the targets picked from Lite0's logits,
    # then the pointing game at 0 and 15 px with attribution localisation, for two explainers
    from xaihelpers import evaluation, explainers, models

    s = folders.voc_pointing(_voc_tree(tmp_path / "VOC2007"), verbose=False)
    net, prep, _ = models.load_model("efficientnet_lite0", device="cpu")
    xv = prep.normalize(s.images)
    with torch.no_grad():
        tv = s.targets(net(xv))
    assert all(int(t) in folders.VOC_IMAGENET[c] for t, c in zip(tv, s.classes))
    hits = evaluation.pointing_games({n: explainers.get(n) for n in ("srd_input", "gradcam")}, net, xv, tv, s.masks,
                                     tolerances=(0, 15), verbose=False, localisation=True)
    assert set(hits) == {0, 15, "localisation"} and hits[0].shape == (3, 2)
    assert ((hits[15] >= hits[0]) | hits[0].isna()).all().all()  # a larger tolerance never loses a hit
    assert hits["localisation"].stack().between(0, 1).all()


# ---------------------------------------------------------------- CIFAR-100 ResNets (chapter 3's Table 4, FULL)

def test_random_shifts_crop_the_padded_image():
    # bug caught: rows and columns shifted by the same offset, or the offset shared by all images
    from xaihelpers import benchmark_models as bm

    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).reshape(2, 3, 6, 6) + 1
    gen = torch.Generator().manual_seed(3)
    out = bm.random_shifts(x, 2, gen)
    off = torch.randint(0, 5, (2, 2), generator=torch.Generator().manual_seed(3))  # the same draw: (dx, dy) per image
    for i in range(2):
        padded = np.pad(x[i].numpy(), ((0, 0), (2, 2), (2, 2)))
        dx, dy = int(off[0, i]), int(off[1, i])
        assert np.array_equal(out[i].numpy(), padded[:, dy:dy + 6, dx:dx + 6])


def test_cifar_resnet_gives_every_activation_call_its_own_module():
    # bug caught: torchvision's blocks call one ReLU module two or three times; SRD and the hooks then see one
    # module where the network has several activation layers, and a ReLU left in place ignores the activation asked for
    from torch import nn

    from xaihelpers import benchmark_models as bm, hooks

    for arch in ("resnet18", "resnet50"):
        net = bm.cifar_resnet("gelu", arch).eval()
        calls = {}
        acts = [m for m in net.modules() if isinstance(m, hooks.ACTIVATION_TYPES)]
        for m in acts:
            m.register_forward_hook(lambda mod, i, o: calls.__setitem__(id(mod), calls.get(id(mod), 0) + 1))
        net(torch.randn(2, 3, 32, 32))
        assert all(isinstance(m, nn.GELU) for m in acts) and len(calls) == len(acts)
        assert set(calls.values()) == {1}
        assert net(torch.randn(1, 3, 32, 32)).shape == (1, 100)
    with pytest.raises(ValueError, match="resnet"):
        bm.cifar_resnet("relu", "vgg16")


def test_chapter3_cifar_path_trains_and_scores_on_a_fixture(tmp_path):
    # chapter 3's CIFAR-100 cell, offline: the fixture in the Python release's format, one tiny training run per
    # activation (two here), then SRD's Table 4 by xh.evaluation.fidelity_table
    from xaihelpers import benchmark_models as bm, evaluation, explainers, srd

    _cifar_files(tmp_path / "cifar-100-python")
    (tmp_path / "cifar-100-python" / "test").rename(tmp_path / "cifar-100-python" / "train")
    _cifar_files(tmp_path / "again")
    (tmp_path / "again" / "test").rename(tmp_path / "cifar-100-python" / "test")
    train, test = folders.cifar100(tmp_path, "train"), folders.cifar100(tmp_path, "test")
    nets = {a: bm.train_cifar100(train, a, "resnet18", epochs=1, batch_size=4, device="cpu", verbose=False)
            for a in ("relu", "tanh")}
    assert not any(m.training for m in nets.values())
    x = bm.cifar_preprocess().normalize(test.images.float() / 255)
    table = evaluation.fidelity_table({"srd_input": srd.explain, "gradcam": explainers.get("gradcam")}, nets, x,
                                      test.labels, n_subsets=8, verbose=False)
    assert list(table.columns) == ["relu", "tanh"] and list(table.index) == ["srd_input", "gradcam"]
    assert table.stack().between(-1, 1).all()
    acc = bm.accuracy(nets["relu"], x, test.labels, batch_size=2)  # the cell's accuracy row, batch by batch
    with torch.no_grad():
        assert round(acc * len(x)) == int((nets["relu"](x).argmax(1) == test.labels).sum())  # a count, compared exactly
