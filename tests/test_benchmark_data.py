"""Fashion-MNIST reading and the cluttered Fashion-MNIST benchmark."""

import numpy as np
import pytest
import torch

from xaihelpers import benchmark


@pytest.fixture(scope="module")
def test_split():
    return benchmark.fashion_mnist("test")


def test_fashion_mnist_has_its_published_splits(test_split):
    images, labels = test_split
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and set(np.unique(labels)) == set(range(10))
    assert np.bincount(labels).tolist() == [1000] * 10  # the test split is balanced
    assert len(benchmark.FASHION_CLASSES) == 10


def test_fashion_mnist_reads_a_given_folder(tmp_path, test_split, monkeypatch):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (raw / f"{stem}.gz").symlink_to(benchmark.FASHION_SYSTEM_DIR / f"{stem}.gz")
    monkeypatch.setattr(benchmark, "FASHION_SYSTEM_DIR", tmp_path / "nowhere")
    monkeypatch.setenv("XAI_DATA", str(tmp_path / "cache"))
    images, labels = benchmark.fashion_mnist("test", root=tmp_path, download=False)
    assert np.array_equal(images, test_split[0]) and np.array_equal(labels, test_split[1])


def test_missing_fashion_mnist_names_the_debian_package(tmp_path, monkeypatch):
    monkeypatch.setattr(benchmark, "FASHION_SYSTEM_DIR", tmp_path / "nowhere")
    monkeypatch.setenv("XAI_DATA", str(tmp_path / "cache"))
    with pytest.raises(benchmark.DataUnavailableError, match="dataset-fashion-mnist") as err:
        benchmark.fashion_mnist("train", download=False)
    assert str(tmp_path / "nowhere") in str(err.value)
    with pytest.raises(ValueError, match="'train' or 'test'"):
        benchmark.fashion_mnist("validation")


def test_offline_download_fails_with_a_clear_error(tmp_path, monkeypatch):
    import socket

    def refuse(*args, **kwargs):
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(benchmark, "FASHION_SYSTEM_DIR", tmp_path / "nowhere")
    monkeypatch.setenv("XAI_DATA", str(tmp_path / "cache"))
    with pytest.raises(benchmark.DataUnavailableError, match="download failed"):
        benchmark.fashion_mnist("test")


@pytest.fixture(scope="module")
def bench():
    return benchmark.cluttered_fashion_mnist("test", n=40, verbose=False)


def test_cluttered_images_masks_and_boxes_agree(bench, test_split):
    assert bench.images.shape == (40, 3, 64, 64) and bench.masks.shape == (40, 64, 64)
    assert 0 <= bench.images.min() and bench.images.max() <= 1
    assert torch.equal(bench.labels, torch.from_numpy(test_split[1][bench.source_index.numpy()]))
    share = bench.masks.float().mean(dim=(1, 2))
    assert (share > 0.02).all() and (share < 0.6).all()
    for m, (x0, y0, x1, y1) in zip(bench.masks, bench.boxes.tolist()):
        ys, xs = torch.nonzero(m, as_tuple=True)
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x0, y0, x1, y1)


def test_cluttered_generation_is_deterministic_and_prefix_stable(bench):
    again = benchmark.cluttered_fashion_mnist("test", n=10, verbose=False)
    assert torch.equal(again.images, bench.images[:10]) and torch.equal(again.masks, bench.masks[:10])
    other = benchmark.cluttered_fashion_mnist("test", n=10, seed=1, verbose=False)
    assert not torch.equal(other.images, again.images)
    sub = bench.subset(slice(0, 5))
    assert len(sub) == 5 and torch.equal(sub.boxes, bench.boxes[:5])


def test_the_object_differs_from_its_background(bench):
    # the item is drawn on top: its pixels are brighter than the dimmed texture around it
    inside = (bench.images.amax(1) * bench.masks).sum((1, 2)) / bench.masks.sum((1, 2))
    outside = (bench.images.amax(1) * ~bench.masks).sum((1, 2)) / (~bench.masks).sum((1, 2))
    assert (inside > outside).float().mean() > 0.9


def test_cluttered_bad_arguments():
    with pytest.raises(ValueError, match="0 < n <="):
        benchmark.cluttered_fashion_mnist("test", n=0)
    with pytest.raises(ValueError, match="size >= 32"):
        benchmark.cluttered_fashion_mnist("test", n=2, size=16)
    with pytest.raises(ValueError, match="scale"):
        benchmark.cluttered_fashion_mnist("test", n=2, scale=(0.7, 0.2))


def test_redraw_with_every_layer_reproduces_the_images(bench):
    sub = bench.subset(torch.tensor([7, 0, 31, 12]))  # out of order: each image is found by its source index
    again = benchmark.redraw_cluttered(sub, benchmark.BENCHMARK_LAYERS, verbose=False)
    assert torch.equal(again.images, sub.images) and torch.equal(again.masks, sub.masks)
    assert torch.equal(again.labels, sub.labels) and again.layers == benchmark.BENCHMARK_LAYERS


def test_redrawn_layers_compose_the_image(bench):
    sub = bench.subset(slice(0, 12))
    view = {name: benchmark.redraw_cluttered(sub, layers, verbose=False).images for name, layers in benchmark.BENCHMARK_VIEWS.items()}
    background = benchmark.redraw_cluttered(sub, ["background"], verbose=False).images
    assert torch.equal(view["full image"], sub.images)
    untouched_by_object = (view["object alone"] == background).all(1)
    untouched_by_clutter = (view["clutter alone"] == background).all(1)
    # where the object leaves the background alone, the full image is the clutter-alone image, and vice versa
    assert torch.equal((sub.images == view["clutter alone"]).all(1)[untouched_by_object], untouched_by_object[untouched_by_object])
    assert torch.equal((sub.images == view["object alone"]).all(1)[untouched_by_clutter], untouched_by_clutter[untouched_by_clutter])
    # no object pixel is left once the object is removed: the mask shows what lies underneath
    assert (~untouched_by_object)[sub.masks].all()
    assert (~untouched_by_object & ~sub.masks).any()  # the object's faint rim outside the mask goes too
    assert ((view["clutter alone"] != sub.images).any(1)[sub.masks]).float().mean() > 0.95
    # every image has clutter that the object-alone view drops
    assert ((view["object alone"] != sub.images).any(1) & ~sub.masks).flatten(1).any(1).all()


def test_redraw_refuses_unknown_layers(bench):
    with pytest.raises(ValueError, match="unknown \\['fragments'\\]"):
        benchmark.redraw_cluttered(bench, ["background", "fragments"])
    with pytest.raises(TypeError, match="ClutteredFashionMNIST"):
        benchmark.redraw_cluttered(bench.images, ["object"])
    black = benchmark.redraw_cluttered(bench.subset(slice(0, 2)), [], verbose=False)
    assert black.images.abs().max() == 0 and black.layers == ()


def test_named_settings_draw_what_their_arguments_draw():
    small = benchmark.cluttered_fashion_mnist("test", n=20, setting="small", verbose=False)
    spelled = benchmark.cluttered_fashion_mnist("test", n=20, scale=(0.25, 0.4), n_fragments=(3, 6), verbose=False)
    assert torch.equal(small.images, spelled.images) and torch.equal(small.masks, spelled.masks)
    assert small.scale == (0.25, 0.4) and small.n_fragments == (3, 6)
    standard = benchmark.cluttered_fashion_mnist("test", n=20, setting="standard", verbose=False)
    # smaller items: the object covers less of the image than in the standard setting
    assert small.masks.float().mean() < 0.6 * standard.masks.float().mean()
    with pytest.raises(ValueError, match="setting"):
        benchmark.cluttered_fashion_mnist("test", n=2, setting="tiny", verbose=False)
