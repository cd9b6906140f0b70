"""The benchmark of chapter 1: Fashion-MNIST, and the cluttered Fashion-MNIST localisation benchmark built from it.

Chapter 1 (``notebooks/01_evaluating_explanations.ipynb``) explains how each image
is drawn (an item on a textured background with fragments of other items as clutter)
and why its ground truth (the item's mask and box) makes localisation measurable.
"""

from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from PIL import Image

from .data import sample_images

FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
# Where Debian's package dataset-fashion-mnist installs the original idx files.
FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
_FASHION_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class DataUnavailableError(RuntimeError):
    """Raised when a dataset is neither on disk nor downloadable."""


def data_dir() -> Path:
    """The user data folder for downloads: ``$XAI_DATA`` or ``~/.cache/xaihelpers``."""
    return Path(os.environ.get("XAI_DATA", Path.home() / ".cache" / "xaihelpers")).expanduser()


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    zero, dtype, ndim = raw[0:2], raw[2], raw[3]
    if zero != b"\x00\x00" or dtype != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte idx file")
    dims = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _find_idx(folder: Path, stem: str) -> Path | None:
    for sub in ("", "FashionMNIST/raw"):
        for suffix in ("", ".gz"):
            p = folder / sub / (stem + suffix)
            if p.is_file():
                return p
    return None


def fashion_mnist(split: str = "train", root: str | Path | None = None, download: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Read Fashion-MNIST (Xiao et al. 2017) from its original idx files.

    The files are looked for in ``root`` (when given), then in
    :data:`FASHION_SYSTEM_DIR` (Debian package ``dataset-fashion-mnist``), then in
    :func:`data_dir` ``/fashion-mnist``; when none has them and ``download`` is true,
    torchvision downloads them into the last folder.

    Parameters
    ----------
    split : {"train", "test"}
        Fashion-MNIST's own split (60,000 or 10,000 images).
    root : str or pathlib.Path, optional
        A folder holding the four idx files (plain or ``.gz``).
    download : bool
        Whether to try torchvision's download when no folder has the files.

    Returns
    -------
    images : numpy.ndarray
        uint8, shape (N, 28, 28).
    labels : numpy.ndarray
        int64, shape (N,), indices into :data:`FASHION_CLASSES`.

    Raises
    ------
    DataUnavailableError
        When the files are nowhere and cannot be downloaded; the message names the
        folders searched and the Debian package that provides them.
    """
    if split not in _FASHION_FILES:
        raise ValueError(f"expected split 'train' or 'test', got {split!r}")
    user = data_dir() / "fashion-mnist"
    folders = ([Path(root).expanduser()] if root is not None else []) + [FASHION_SYSTEM_DIR, user]
    stems = _FASHION_FILES[split]
    for folder in folders:
        found = [_find_idx(folder, s) for s in stems]
        if all(found):
            images, labels = (_read_idx(p) for p in found)
            return images.copy(), labels.astype(np.int64)
    error = None
    if download:
        try:
            from torchvision.datasets import FashionMNIST

            FashionMNIST(str(user), train=split == "train", download=True)
            found = [_find_idx(user, s) for s in stems]
            if all(found):
                images, labels = (_read_idx(p) for p in found)
                return images.copy(), labels.astype(np.int64)
        except Exception as err:  # network errors come in many types
            error = err
    raise DataUnavailableError(
        "Fashion-MNIST idx files not found in " + ", ".join(str(f) for f in folders)
        + ". Install them with `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu), "
        "or put train-/t10k-images-idx3-ubyte(.gz) and -labels-idx1-ubyte(.gz) into one of "
        "those folders, or run once online so torchvision can download them"
        + (f" (the download failed: {error})" if error else "")
    )


@dataclass
class ClutteredFashionMNIST:
    """A localisation benchmark whose evidence is known by construction.

    Attributes
    ----------
    images : torch.Tensor
        float32 in [0, 1], shape (N, 3, size, size).
    labels : torch.Tensor
        int64, shape (N,), indices into ``classes``.
    masks : torch.Tensor
        bool, shape (N, size, size): the pixels of the labelled item.
    boxes : torch.Tensor
        int64, shape (N, 4): the item's bounding box ``(x0, y0, x1, y1)``, end exclusive.
    source_index : torch.Tensor
        int64, shape (N,): which Fashion-MNIST image of ``split`` each item is.
    split : str
        ``"train"`` or ``"test"``, Fashion-MNIST's own split.
    seed : int
        The generator's seed.
    classes : tuple of str
        Fashion-MNIST's class names.
    n_fragments, scale : (int, int), (float, float)
        The generator's settings (see :func:`cluttered_fashion_mnist`), kept so that
        :func:`redraw_cluttered` can redraw the same images.
    layers : tuple of str
        Which of :data:`BENCHMARK_LAYERS` the images show (all of them unless redrawn).
    """

    images: torch.Tensor = field(repr=False)
    labels: torch.Tensor = field(repr=False)
    masks: torch.Tensor = field(repr=False)
    boxes: torch.Tensor = field(repr=False)
    source_index: torch.Tensor = field(repr=False)
    split: str
    seed: int
    classes: tuple[str, ...] = FASHION_CLASSES
    n_fragments: tuple[int, int] = (1, 3)
    scale: tuple[float, float] = (0.45, 0.7)
    layers: tuple[str, ...] = ("background", "clutter", "object")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index) -> "ClutteredFashionMNIST":
        """The images at ``index`` (slice, int sequence or bool tensor) as a new set."""
        pick = lambda t: t[index]  # noqa: E731
        return ClutteredFashionMNIST(pick(self.images), pick(self.labels), pick(self.masks), pick(self.boxes),
                                     pick(self.source_index), self.split, self.seed, self.classes,
                                     self.n_fragments, self.scale, self.layers)


# What a cluttered image is drawn from, bottom to top: the dimmed texture or photo crop,
# the fragments of items of other classes, the labelled item.
BENCHMARK_LAYERS = ("background", "clutter", "object")
# The views of chapter 1's ground-truth check: which layers each one draws.
BENCHMARK_VIEWS = {
    "full image": BENCHMARK_LAYERS,
    "object alone": ("background", "object"),
    "clutter alone": ("background", "clutter"),
}

# The generator's two settings. "standard" is chapter 1's benchmark: large items, few fragments,
# on which the pointing game saturates (nearly every map's maximum falls on the item). "small"
# draws the item at a quarter to two fifths of the side among three to six fragments of other
# classes as large as it, so a map's maximum can land on a distractor: chapter 3 scores the
# pointing game there. Each has its own CNN (``fmnist_cnn_relu`` and ``fmnist_cnn_relu_small``).
BENCHMARK_SETTINGS = {
    "standard": {"scale": (0.45, 0.7), "n_fragments": (1, 3)},
    "small": {"scale": (0.25, 0.4), "n_fragments": (3, 6)},
}

_TEXTURES = ("brick", "grass", "gravel")
_PHOTOS = ("coffee", "rocket", "astronaut", "china", "flower", "grace_hopper")


def _backgrounds() -> list[np.ndarray]:
    """Texture and photo sources as float arrays (H, W, 3) in [0, 1]."""
    import skimage.data

    out = []
    for name in _TEXTURES:
        g = getattr(skimage.data, name)().astype(np.float32) / 255.0
        out.append(np.repeat(g[..., None], 3, axis=2))
    for s in sample_images(_PHOTOS).values():
        out.append(np.asarray(s.image, dtype=np.float32) / 255.0)
    return out


def _resize(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a float array (H, W) or (H, W, 3) to (h, w) = size."""
    h, w = size
    if arr.ndim == 2:
        return np.asarray(Image.fromarray(arr.astype(np.float32), mode="F").resize((w, h), Image.BILINEAR))
    return np.stack([_resize(arr[..., c], size) for c in range(arr.shape[2])], axis=2)


def _colour(rng: np.random.Generator) -> np.ndarray:
    import colorsys

    return np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.45, 1.0), rng.uniform(0.75, 1.0)), dtype=np.float32)


def _paste(canvas: np.ndarray, shape: np.ndarray, colour: np.ndarray, top: int, left: int) -> np.ndarray:
    """Blend a grey item ``shape`` (h, w) in [0, 1], tinted with ``colour``, onto ``canvas`` in place.

    Returns the (h, w) opacity used, so callers can derive masks.
    """
    h, w = shape.shape
    opacity = np.clip(shape / 0.2, 0.0, 1.0)[..., None]
    ink = colour[None, None, :] * (0.35 + 0.65 * shape[..., None])
    region = canvas[top : top + h, left : left + w]
    region[...] = (1 - opacity) * region + opacity * ink
    return opacity[..., 0]


def _cluttered_one(rng: np.random.Generator, item: np.ndarray, fragments: list[np.ndarray],
                   backgrounds: list[np.ndarray], size: int, scale: tuple[float, float],
                   layers: tuple[str, ...] = BENCHMARK_LAYERS) -> tuple[np.ndarray, np.ndarray]:
    # Every random draw is made whichever layers are drawn, so that leaving a layer out
    # changes nothing else. Background: a random crop of a texture or photo, dimmed, with a random tint
    src = backgrounds[rng.integers(len(backgrounds))]
    side = int(rng.integers(size, min(src.shape[0], src.shape[1], 3 * size) + 1))
    y0 = int(rng.integers(0, src.shape[0] - side + 1))
    x0 = int(rng.integers(0, src.shape[1] - side + 1))
    canvas = _resize(src[y0 : y0 + side, x0 : x0 + side], (size, size))
    canvas = canvas * rng.uniform(0.3, 0.6) * rng.uniform(0.7, 1.0, size=3).astype(np.float32)
    if "background" not in layers:
        canvas = np.zeros_like(canvas)
    # clutter: fragments of items of other classes, under the main item
    for frag in fragments:
        fh = int(rng.integers(8, 15))
        fy, fx = (int(v) for v in rng.integers(0, 28 - fh + 1, size=2))
        piece = frag[fy : fy + fh, fx : fx + fh]
        out = int(round(fh * size / 64 * rng.uniform(1.0, 1.4)))
        piece = np.clip(_resize(piece, (out, out)), 0, 1)
        top, left = (int(v) for v in rng.integers(0, size - out + 1, size=2))
        colour = _colour(rng)
        if "clutter" in layers:
            _paste(canvas, piece, colour, top, left)
    # the labelled item, scaled and placed at random
    side = int(round(size * rng.uniform(*scale)))
    shape = np.clip(_resize(item, (side, side)), 0, 1)
    top, left = (int(v) for v in rng.integers(0, size - side + 1, size=2))
    opacity = _paste(canvas if "object" in layers else canvas.copy(), shape, _colour(rng), top, left)
    mask = np.zeros((size, size), dtype=bool)
    mask[top : top + side, left : left + side] = opacity > 0.5
    return np.clip(canvas, 0, 1), mask


def cluttered_fashion_mnist(
    split: str = "test",
    n: int = 500,
    size: int = 64,
    seed: int = 0,
    n_fragments: tuple[int, int] = (1, 3),
    scale: tuple[float, float] = (0.45, 0.7),
    root: str | Path | None = None,
    verbose: bool = True,
    setting: str | None = None,
) -> ClutteredFashionMNIST:
    """Generate cluttered Fashion-MNIST: one coloured item on a real texture, among fragments of others.

    Each image places a Fashion-MNIST item, tinted with a random colour, scaled to a
    random fraction ``scale`` of the image side and put at a random position, on a
    dimmed random crop of scikit-image's brick, grass or gravel texture or of a
    sample photo, over ``n_fragments`` small fragments of items of *other* classes.
    The label is the item's class and the item's own pixels form the ground-truth
    mask, so an explanation of the right class should point there.

    Image ``i`` depends only on ``(seed, split, i, size)``: the first ``n`` images of a
    larger set are the same images.

    Parameters
    ----------
    split : {"train", "test"}
        Which Fashion-MNIST split the items (and fragments) come from.
    n : int
        Number of images (at most the split's size).
    size : int
        Side of the square images, in pixels.
    seed : int
        Seed of the generator.
    n_fragments : (int, int)
        Inclusive range of the number of clutter fragments per image.
    scale : (float, float)
        Range of the item's side as a fraction of ``size``.
    root : str or pathlib.Path, optional
        Folder with Fashion-MNIST's idx files (see :func:`fashion_mnist`).
    verbose : bool
        Show a progress bar.
    setting : {"standard", "small"}, optional
        A named pair of ``scale`` and ``n_fragments`` from :data:`BENCHMARK_SETTINGS`,
        which then replaces those two arguments.

    Returns
    -------
    ClutteredFashionMNIST
        Images (N, 3, size, size) in [0, 1], labels, masks (N, size, size) and boxes.
    """
    if setting is not None:
        if setting not in BENCHMARK_SETTINGS:
            raise ValueError(f"expected setting in {sorted(BENCHMARK_SETTINGS)}, got {setting!r}")
        scale, n_fragments = BENCHMARK_SETTINGS[setting]["scale"], BENCHMARK_SETTINGS[setting]["n_fragments"]
    if split not in _FASHION_FILES:
        raise ValueError(f"expected split 'train' or 'test', got {split!r}")
    if size < 32:
        raise ValueError(f"expected size >= 32 pixels, got {size}")
    if not 0 < scale[0] <= scale[1] <= 1:
        raise ValueError(f"expected 0 < scale[0] <= scale[1] <= 1, got {scale}")
    items, labels = fashion_mnist(split, root)
    if not 0 < n <= len(items):
        raise ValueError(f"expected 0 < n <= {len(items)} for split {split!r}, got {n}")
    return _draw(items, labels, np.arange(n), split, size, seed, n_fragments, scale, BENCHMARK_LAYERS, verbose)


def _draw(items: np.ndarray, labels: np.ndarray, positions: np.ndarray, split: str, size: int, seed: int,
          n_fragments: tuple[int, int], scale: tuple[float, float], layers: tuple[str, ...],
          verbose: bool) -> ClutteredFashionMNIST:
    """Images ``positions`` of the cluttered set ``(seed, split, size)``, drawn with ``layers``."""
    from tqdm.auto import tqdm

    split_id = 0 if split == "train" else 1
    order = np.random.default_rng([seed, split_id]).permutation(len(items))[positions]
    grey = items.astype(np.float32) / 255.0
    backgrounds = _backgrounds()
    n = len(positions)
    images = np.empty((n, size, size, 3), dtype=np.float32)
    masks = np.empty((n, size, size), dtype=bool)
    for k in tqdm(range(n), desc=f"cluttered Fashion-MNIST ({split})", disable=not verbose):
        rng = np.random.default_rng([seed, split_id, int(positions[k]), size])
        idx = order[k]
        others = []
        for _ in range(int(rng.integers(n_fragments[0], n_fragments[1] + 1))):
            j = int(rng.integers(len(items)))
            while labels[j] == labels[idx]:
                j = int(rng.integers(len(items)))
            others.append(grey[j])
        images[k], masks[k] = _cluttered_one(rng, grey[idx], others, backgrounds, size, scale, layers)
    boxes = np.zeros((n, 4), dtype=np.int64)
    for k, m in enumerate(masks):
        ys, xs = np.nonzero(m)
        if len(ys):
            boxes[k] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    return ClutteredFashionMNIST(
        images=torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
        labels=torch.from_numpy(labels[order].copy()),
        masks=torch.from_numpy(masks),
        boxes=torch.from_numpy(boxes),
        source_index=torch.from_numpy(order.astype(np.int64)),
        split=split,
        seed=seed,
        n_fragments=tuple(n_fragments),
        scale=tuple(scale),
        layers=tuple(layers),
    )


def redraw_cluttered(
    data: ClutteredFashionMNIST,
    layers: Iterable[str],
    root: str | Path | None = None,
    verbose: bool = True,
) -> ClutteredFashionMNIST:
    """The same cluttered Fashion-MNIST images drawn again with only some of their layers.

    Chapter 1 uses it to test the benchmark's ground truth: does a CNN classify the
    object without its clutter, and the clutter without its object? Each image is
    replayed from its own seed with every random draw of the original (the crop and
    tint of the background, the fragments, their places and colours, the item's
    size, place and colour), and only the layers not in ``layers`` are left out:

    - without ``"clutter"``, the fragments of other items are not pasted, so the
      object lies on its own dimmed background;
    - without ``"object"``, the labelled item is not pasted, so the pixels it
      covered show the background and fragments that lie underneath it (its faint
      rim outside the mask is gone as well): no object pixel is left;
    - without ``"background"``, the canvas is black (0) instead of the dimmed crop.

    Nothing is filled in by hand: the images are exactly what the generator draws
    with those layers, and with all of :data:`BENCHMARK_LAYERS` they are the
    original images, bit for bit. :data:`BENCHMARK_VIEWS` names the views chapter 1
    compares.

    Parameters
    ----------
    data : ClutteredFashionMNIST
        Images from :func:`cluttered_fashion_mnist`, or a :meth:`~ClutteredFashionMNIST.subset` of them.
    layers : iterable of str
        The layers to draw, from :data:`BENCHMARK_LAYERS`; order does not matter
        (they are always drawn background, clutter, object).
    root, verbose
        As in :func:`cluttered_fashion_mnist`: the folder of Fashion-MNIST's idx
        files and whether to show a progress bar.

    Returns
    -------
    ClutteredFashionMNIST
        Images (N, 3, size, size) of the chosen layers; labels, masks, boxes and
        ``source_index`` as in ``data`` (the mask still marks where the object is,
        drawn or not); ``layers`` records what was drawn.
    """
    if isinstance(layers, str):
        layers = (layers,)
    chosen = set(layers)
    unknown = chosen - set(BENCHMARK_LAYERS)
    if unknown:
        raise ValueError(f"expected layers from {BENCHMARK_LAYERS}, got unknown {sorted(unknown)}")
    if not isinstance(data, ClutteredFashionMNIST):
        raise TypeError(f"expected a ClutteredFashionMNIST from xaihelpers.data.cluttered_fashion_mnist, "
                        f"got {type(data).__name__}")
    items, labels = fashion_mnist(data.split, root)
    split_id = 0 if data.split == "train" else 1
    order = np.random.default_rng([data.seed, split_id]).permutation(len(items))
    position = np.empty_like(order)
    position[order] = np.arange(len(order))
    positions = position[data.source_index.numpy()]
    out = _draw(items, labels, positions, data.split, int(data.images.shape[-1]), data.seed, data.n_fragments,
                data.scale, tuple(x for x in BENCHMARK_LAYERS if x in chosen), verbose)
    return ClutteredFashionMNIST(out.images, data.labels.clone(), data.masks.clone(), data.boxes.clone(),
                                 data.source_index.clone(), data.split, data.seed, data.classes,
                                 data.n_fragments, data.scale, out.layers)


