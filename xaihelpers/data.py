"""Images for the book: the photos that ship with scikit-image, matplotlib and
scikit-learn, and a reader's own files.

Chapter 0 (``notebooks/00_getting_started.ipynb``) shows them and what the
offline classifier makes of them.
"""

from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

# PIL modes to_rgb converts to RGB; anything else is refused. The 16-bit modes
# ("I;16", "I;16B", ...), "I" and "F" are how PIL opens 16-bit and floating-point
# PNG and TIFF files; their values are scaled as :func:`to_rgb_array` says.
SUPPORTED_MODES = ("RGB", "RGBA", "RGBX", "RGBa", "L", "LA", "P", "PA", "1", "CMYK", "YCbCr",
                   "I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_DEEP_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "PA")
_SHAPES = "(H, W), (H, W, C) or (C, H, W) with C = 1 (gray), 2 (gray, alpha), 3 (RGB) or 4 (RGBA)"
# A float picture whose largest value is at most 1 + _UNIT_SLACK is taken in [0, 1]
# (float32 rounding of computed pixels); one in 0..255 may stray half a level.
_UNIT_SLACK = 1e-6
_LEVEL_SLACK = 0.5


@dataclass(frozen=True)
class SampleImage:
    """A named photo with the ImageNet classes that fit it.

    Attributes
    ----------
    name : str
        Short name, e.g. ``"coffee"``.
    image : PIL.Image.Image
        The RGB photo.
    labels : tuple of int
        ImageNet class indices that describe the photo's main object, most fitting
        first; empty when no ImageNet class clearly does.
    source : str
        Where the photo comes from.
    """

    name: str
    image: Image.Image = field(repr=False)
    labels: tuple[int, ...]
    source: str

    @property
    def label(self) -> int | None:
        """The most fitting ImageNet class, or ``None``."""
        return self.labels[0] if self.labels else None


# name -> (loader, ImageNet labels, source)
def _skimage(name: str) -> Callable[[], Image.Image]:
    def load() -> Image.Image:
        import skimage.data

        return Image.fromarray(getattr(skimage.data, name)()).convert("RGB")

    return load


def _matplotlib(name: str) -> Callable[[], Image.Image]:
    def load() -> Image.Image:
        import matplotlib.cbook

        with matplotlib.cbook.get_sample_data(name) as fh:
            return Image.open(fh).convert("RGB")

    return load


def _sklearn(name: str) -> Callable[[], Image.Image]:
    def load() -> Image.Image:
        from sklearn.datasets import load_sample_image

        return Image.fromarray(load_sample_image(name)).convert("RGB")

    return load


_CATALOGUE: dict[str, tuple[Callable[[], Image.Image], tuple[int, ...], str]] = {
    # 281 tabby, 282 tiger cat, 285 Egyptian cat
    "chelsea": (_skimage("chelsea"), (281, 282, 285), "scikit-image: skimage.data.chelsea"),
    # 967 espresso, 968 cup
    "coffee": (_skimage("coffee"), (967, 968), "scikit-image: skimage.data.coffee"),
    # 657 missile, 744 projectile (a Falcon 9 on its launch pad)
    "rocket": (_skimage("rocket"), (657, 744), "scikit-image: skimage.data.rocket"),
    # 652 military uniform (Grace Hopper in US Navy dress)
    "grace_hopper": (_matplotlib("grace_hopper.jpg"), (652,), "matplotlib: sample_data/grace_hopper.jpg"),
    # a portrait of an astronaut: no ImageNet class fits
    "astronaut": (_skimage("astronaut"), (), "scikit-image: skimage.data.astronaut"),
    # a Chinese temple roof: 'palace' comes closest but is not clear
    "china": (_sklearn("china.jpg"), (), "scikit-learn: load_sample_image('china.jpg')"),
    # a dahlia-like flower: ImageNet has no such class
    "flower": (_sklearn("flower.jpg"), (), "scikit-learn: load_sample_image('flower.jpg')"),
}

SAMPLE_NAMES = tuple(_CATALOGUE)


def sample_images(names: Iterable[str] | None = None) -> dict[str, SampleImage]:
    """The real photos bundled with scikit-image, matplotlib and scikit-learn.

    Parameters
    ----------
    names : iterable of str, optional
        Which photos, from :data:`SAMPLE_NAMES`; all of them by default.

    Returns
    -------
    dict of str to SampleImage
        In the order asked for; each holds an RGB PIL image and its ImageNet labels.
    """
    if isinstance(names, str):
        names = [names]
    wanted = list(SAMPLE_NAMES if names is None else names)
    unknown = [n for n in wanted if n not in _CATALOGUE]
    if unknown:
        raise ValueError(f"expected sample names from {SAMPLE_NAMES}, got unknown {unknown}")
    out = {}
    for name in wanted:
        loader, labels, source = _CATALOGUE[name]
        out[name] = SampleImage(name, loader(), labels, source)
    return out


def load_image(path: str | os.PathLike) -> Image.Image:
    """Read an image file as an RGB PIL image.

    Every mode PIL opens PNG, JPEG and TIFF files in is converted (see :func:`to_rgb`):
    grayscale, palette, bilevel, CMYK, YCbCr, 16-bit and floating-point images, and
    images with transparency, whose transparent pixels are composited on white.

    Parameters
    ----------
    path : str or os.PathLike
        The image file.

    Returns
    -------
    PIL.Image.Image
        The image in mode ``"RGB"``.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    TypeError
        When ``path`` is not a path (an array or image already holds its pixels:
        :func:`to_rgb` converts those).
    ValueError
        When the file is not an image PIL can read, its mode is not one of
        :data:`SUPPORTED_MODES`, or its values do not fit that mode's scale.
    """
    if not isinstance(path, (str, os.PathLike)):
        held = f" of shape {tuple(path.shape)}" if isinstance(path, (np.ndarray, torch.Tensor)) else ""
        raise TypeError(f"expected a file path (str or pathlib.Path), got {_kind(path)}{held}; "
                        "pixels already in memory are converted by xaihelpers.data.to_rgb")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no image file at {path}")
    try:
        with Image.open(path) as img:
            img.load()
            return to_rgb(img)
    except UnidentifiedImageError as err:
        raise ValueError(f"expected an image file (PNG, JPEG, TIFF, ...), but PIL cannot read {path}") from err


def to_rgb(img: Image.Image | SampleImage | np.ndarray | torch.Tensor) -> Image.Image:
    """Convert a picture to an 8-bit RGB PIL image (transparency composited on white).

    Parameters
    ----------
    img : PIL.Image.Image, SampleImage, numpy.ndarray or torch.Tensor
        A PIL image whose mode is in :data:`SUPPORTED_MODES`, or one picture as an
        array or tensor, read as :func:`to_rgb_array` says.

    Returns
    -------
    PIL.Image.Image
        A new RGB image of the same size. 8-bit images keep their values (PIL's own
        conversion); 16-bit and floating-point ones are rounded to the nearest of the
        256 levels.

    Raises
    ------
    TypeError
        When ``img`` is none of these kinds.
    ValueError
        When its mode, shape or values are not those :func:`to_rgb_array` accepts.
    """
    if isinstance(img, SampleImage):
        img = img.image
    if not isinstance(img, Image.Image) or img.mode in _DEEP_MODES:
        return Image.fromarray(_to_uint8(to_rgb_array(img)), "RGB")
    _check_mode(img)
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in _ALPHA_MODES:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def to_rgb_array(img: Image.Image | SampleImage | np.ndarray | torch.Tensor) -> np.ndarray:
    """Turn one picture, as a reader may hold it, into an (H, W, 3) float array in [0, 1].

    The values are read by their type:

    - PIL images of the 8-bit modes in :data:`SUPPORTED_MODES`: converted by
      :func:`to_rgb`, then divided by 255. Modes ``"I;16"``, ``"I;16B"``, ... and
      ``"I"`` (how PIL opens 16-bit PNG and TIFF files) are divided by 65535; an
      ``"I"`` image with values outside 0..65535 is refused. Mode ``"F"`` follows the
      float rule below.
    - uint8 arrays and tensors are divided by 255, uint16 ones by 65535 (the dtype's
      maximum), bool ones are 0 or 1.
    - Float and other integer arrays: taken as they are when no value exceeds 1
      (values below 0 are clipped), divided by 255 when they lie in 0..255; any
      other range (a normalised batch, 16-bit levels in a float array) is refused.
      NaN and infinity are refused.

    The channel axis: 2-D input is gray. A tensor is channel-first when its first axis
    has 1 or 3 entries; an array when its first axis has 1 or 3 entries and its last
    neither. Otherwise the last axis holds the channels when it has 1 to 4 entries,
    else the first. Two channels are gray and alpha, four are RGBA; alpha is
    composited on white.

    Parameters
    ----------
    img : PIL.Image.Image, SampleImage, numpy.ndarray or torch.Tensor
        One picture: shape (H, W), (H, W, C) or (C, H, W), C in 1..4.

    Returns
    -------
    numpy.ndarray
        float32, shape (H, W, 3), values in [0, 1].

    Raises
    ------
    TypeError
        When ``img`` is not a picture (e.g. a file name: read it with :func:`load_image`).
    ValueError
        When the shape or the values do not fit the rules above; the message says
        what came.
    """
    if isinstance(img, SampleImage):
        img = img.image
    if isinstance(img, Image.Image):
        if img.mode not in _DEEP_MODES:
            return np.asarray(to_rgb(img), dtype=np.float32) / 255.0
        _check_mode(img)
        values = np.asarray(img)
        if img.mode == "I":
            lo, hi = int(values.min()), int(values.max())
            if lo < 0 or hi > 65535:
                raise ValueError(f"expected a mode 'I' image with 16-bit values 0..65535 (how PIL reads 16-bit "
                                 f"files), got values from {lo} to {hi}; scale it to [0, 1] first")
            values = values.astype(np.uint16)
        gray = _unit_values(values, f"mode {img.mode!r} image")
        return np.repeat(gray[..., None], 3, axis=-1)
    if isinstance(img, torch.Tensor):
        t = img.detach().cpu()
        arr = (t.float() if t.is_floating_point() else t).numpy()
        channels_first = arr.ndim == 3 and arr.shape[0] in (1, 3)
    elif isinstance(img, np.ndarray):
        arr = img
        channels_first = arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3)
    else:
        hint = "; read a file with xaihelpers.load_image" if isinstance(img, (str, os.PathLike)) else ""
        raise TypeError(f"expected a picture (PIL image, NumPy array or torch tensor), got {_kind(img)}{hint}")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"expected pixel values of a numeric dtype, got dtype {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[..., None]
    elif arr.ndim == 3 and not channels_first and arr.shape[-1] not in (1, 2, 3, 4) and arr.shape[0] in (1, 2, 3, 4):
        channels_first = True
    elif arr.ndim != 3:
        batch = "; that is a batch of images: pass them one at a time (to_batch takes a batch)" if arr.ndim == 4 else ""
        raise ValueError(f"expected one image of shape {_SHAPES}, got {tuple(arr.shape)}{batch}")
    if channels_first:
        arr = np.moveaxis(arr, 0, -1)
    if arr.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(f"expected one image of shape {_SHAPES}, got {tuple(img.shape)} "
                         f"({arr.shape[-1]} channels on either end)")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"expected an image with pixels, got shape {tuple(img.shape)}")
    values = _unit_values(arr, f"{arr.dtype} {type(img).__name__}")
    if values.shape[-1] in (2, 4):  # composite the alpha channel on white
        alpha = values[..., -1:]
        values = values[..., :-1] * alpha + (1.0 - alpha)
    if values.shape[-1] == 1:
        values = np.repeat(values, 3, axis=-1)
    return np.ascontiguousarray(values, dtype=np.float32)


def _kind(obj: object) -> str:
    """A short description of what came, for error messages."""
    if isinstance(obj, str):
        return f"the string {obj[:60]!r}"
    if isinstance(obj, (np.ndarray, torch.Tensor)):
        return f"a {type(obj).__module__.split('.')[0]}.{type(obj).__name__} of dtype {obj.dtype}"
    if isinstance(obj, Image.Image):
        return f"a PIL image of mode {obj.mode!r}"
    return type(obj).__name__


def _check_mode(img: Image.Image) -> None:
    if img.mode not in SUPPORTED_MODES:
        raise ValueError(f"expected an image in one of the modes {SUPPORTED_MODES}, got mode {img.mode!r}; "
                         "convert it to RGB first")


def _unit_values(arr: np.ndarray, what: str) -> np.ndarray:
    """Pixel values to float32 in [0, 1] by the rules of :func:`to_rgb_array`."""
    if arr.dtype == np.bool_:
        return arr.astype(np.float32)
    if arr.dtype.kind == "u" and arr.dtype.itemsize <= 2:  # uint8, uint16: by the dtype's maximum
        return arr.astype(np.float32) / float(np.iinfo(arr.dtype).max)
    values = arr.astype(np.float32)
    if not np.isfinite(values).all():
        raise ValueError(f"expected finite pixel values, got NaN or infinity in a {what}")
    lo, hi = float(values.min()), float(values.max())
    if hi <= 1.0 + _UNIT_SLACK:
        return np.clip(values, 0.0, 1.0)
    if lo >= -_LEVEL_SLACK and hi <= 255.0 + _LEVEL_SLACK:
        return np.clip(values / 255.0, 0.0, 1.0)
    hint = ("; is it a normalised model input? undo the normalisation first (e.g. preprocess.denormalize)"
            if lo < 0 else "; pass 16-bit levels as a uint16 array, or scale the values to [0, 1]")
    raise ValueError(f"expected pixel values in [0, 1] or 0..255 in a {what}, "
                     f"got values from {lo:.4g} to {hi:.4g}{hint}")


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """[0, 1] floats to the nearest of 256 levels."""
    return np.round(values * 255.0).astype(np.uint8)


def to_batch(
    images: Iterable | Image.Image | SampleImage | str | os.PathLike | np.ndarray | torch.Tensor,
    preprocess: Callable[[Image.Image], torch.Tensor],
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Preprocess pictures and stack them into one batch.

    Each picture is made an 8-bit RGB PIL image (:func:`to_rgb`, which reads arrays
    and tensors as :func:`to_rgb_array` says; file paths are read with
    :func:`load_image`), then preprocessed. Arrays in [0, 1] thus come through
    rounded to the nearest of 256 levels (at most 1/510 off), as from a file.

    Parameters
    ----------
    images : picture or iterable of pictures
        PIL images, :class:`SampleImage`, file paths, NumPy arrays or tensors of one
        picture each ((H, W), (H, W, C) or (C, H, W); uint8, uint16, bool or float in
        [0, 1] or 0..255). A single picture may come without a list; a 4-D array or
        tensor is a batch of pictures along its first axis; a mapping (e.g.
        :func:`sample_images`) gives its values. Pictures, not model
        inputs: an already normalised batch is refused.
    preprocess : callable
        PIL image to (3, H, W) tensor, e.g. the one :func:`xaihelpers.load_model` returns.
    device : torch.device or str, optional
        Where to put the batch (default: CPU).

    Returns
    -------
    torch.Tensor
        Shape (N, 3, H, W).
    """
    if isinstance(images, (Image.Image, SampleImage, str, os.PathLike)):
        images = [images]
    elif isinstance(images, Mapping):
        images = images.values()
    elif isinstance(images, (np.ndarray, torch.Tensor)):
        if images.ndim in (2, 3):
            images = [images]
        elif images.ndim != 4:
            raise ValueError(f"expected one picture of shape {_SHAPES}, or a batch of them (N, ...) along the first "
                             f"axis, got {_kind(images)} of shape {tuple(images.shape)}")
    elif not isinstance(images, Iterable):
        raise TypeError(f"expected a picture or an iterable of pictures (PIL images, paths, arrays or tensors), "
                        f"got {_kind(images)}")
    tensors = []
    for i, im in enumerate(images):
        try:
            pic = load_image(im) if isinstance(im, (str, os.PathLike)) else to_rgb(im)
        except (TypeError, ValueError) as err:
            raise type(err)(f"image {i}: {err}") from err
        tensors.append(preprocess(pic))
    if not tensors:
        raise ValueError("expected at least one image, got none")
    return torch.stack(tensors).to(device if device is not None else "cpu")


# ---------------------------------------------------------------------------
# Fashion-MNIST and the cluttered Fashion-MNIST localisation benchmark
# (chapter 1, ``notebooks/01_evaluating_explanations.ipynb``)
# ---------------------------------------------------------------------------

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

    Returns
    -------
    ClutteredFashionMNIST
        Images (N, 3, size, size) in [0, 1], labels, masks (N, size, size) and boxes.
    """
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
    root : str or pathlib.Path, optional
        Folder with Fashion-MNIST's idx files (see :func:`fashion_mnist`).
    verbose : bool
        Show a progress bar.

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


# ---------------------------------------------------------------------------
# ImageNet validation images with their bounding boxes (the full-scale path of
# the localisation experiments; chapter 2)
# ---------------------------------------------------------------------------

_SYNSET_FILES = ("LOC_synset_mapping.txt", "synsets.txt", "synset_words.txt")


@dataclass(frozen=True)
class LocalisationSet:
    """Photos with one ground-truth box each, for the localisation error.

    Attributes
    ----------
    images : torch.Tensor
        float32 in [0, 1], shape (N, 3, size, size): each photo resized (not cropped,
        so the boxes stay inside).
    labels : torch.Tensor
        int64, shape (N,): ImageNet class indices (sorted-synset order).
    boxes : torch.Tensor
        int64, shape (N, 4): ``(x0, y0, x1, y1)`` in the resized image, end exclusive;
        the largest box of the labelled class when there are several.
    names : tuple of str
        File stems, e.g. ``"ILSVRC2012_val_00000001"``.
    """

    images: torch.Tensor = field(repr=False)
    labels: torch.Tensor = field(repr=False)
    boxes: torch.Tensor = field(repr=False)
    names: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def read_synsets(path: str | Path) -> list[str]:
    """WordNet ids in class-index order from a ``LOC_synset_mapping.txt``-style file.

    Each non-empty line starts with the id (``n01440764 tench, Tinca tinca``); line
    ``i`` is class ``i``.
    """
    ids = [line.split()[0] for line in Path(path).read_text().splitlines() if line.strip()]
    if not ids or not all(i.startswith("n") and i[1:].isdigit() for i in ids):
        raise ValueError(f"{path}: expected lines starting with WordNet ids such as 'n01440764'")
    return ids


def read_voc_boxes(path: str | Path) -> tuple[tuple[int, int], list[tuple[str, tuple[int, int, int, int]]]]:
    """One PASCAL-VOC-style annotation file (ImageNet's bounding-box XML).

    Returns
    -------
    (width, height), list of (wnid, (x0, y0, x1, y1))
        Image size and the boxes; ImageNet's ``xmax``/``ymax`` are inclusive and come
        back end-exclusive.
    """
    import xml.etree.ElementTree as ET

    try:
        root = ET.parse(path).getroot()
        size = root.find("size")
        wh = (int(size.findtext("width")), int(size.findtext("height")))
        objs = []
        for obj in root.iter("object"):
            b = obj.find("bndbox")
            x0, y0, x1, y1 = (int(float(b.findtext(k))) for k in ("xmin", "ymin", "xmax", "ymax"))
            objs.append((obj.findtext("name").strip(), (x0, y0, x1 + 1, y1 + 1)))
    except (ET.ParseError, AttributeError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: not a bounding-box annotation with size and objects ({err})") from err
    if not objs:
        raise ValueError(f"{path}: no <object> in the annotation")
    return wh, objs


def imagenet_localisation(
    images: str | Path,
    annotations: str | Path | None = None,
    synsets: str | Path | list[str] | None = None,
    n: int | None = None,
    size: int = 224,
    verbose: bool = True,
) -> LocalisationSet:
    """Load ImageNet validation photos and their boxes (the full-scale localisation path).

    Parameters
    ----------
    images : path
        Folder of ``*.JPEG`` files (e.g. ``ILSVRC2012_val_00000001.JPEG``).
    annotations : path, optional
        Folder of the matching ``.xml`` files (ILSVRC2012 bounding boxes); default
        ``images`` itself.
    synsets : path or list of str, optional
        Class order: a list of WordNet ids, or a file as :func:`read_synsets` reads;
        default the first of ``LOC_synset_mapping.txt``, ``synsets.txt`` or
        ``synset_words.txt`` found in ``images`` or its parent.
    n : int, optional
        Take the first ``n`` photos in name order.
    size : int
        Side the photos are resized to; boxes are scaled with them.
    verbose : bool
        Show a progress bar.

    Returns
    -------
    LocalisationSet
    """
    from tqdm.auto import tqdm

    images = Path(images)
    annotations = Path(annotations) if annotations is not None else images
    if not images.is_dir():
        raise FileNotFoundError(f"{images}: no such folder of validation images")
    if synsets is None:
        found = [d / f for d in (images, images.parent) for f in _SYNSET_FILES if (d / f).is_file()]
        if not found:
            raise FileNotFoundError(f"no class list ({', '.join(_SYNSET_FILES)}) in {images} or its parent; "
                                    "pass synsets= (the 1000 WordNet ids in class-index order)")
        synsets = found[0]
    ids = list(synsets) if isinstance(synsets, (list, tuple)) else read_synsets(synsets)
    index = {w: i for i, w in enumerate(ids)}
    files = sorted(p for p in images.iterdir() if p.suffix.lower() in (".jpeg", ".jpg", ".png"))
    if n is not None:
        files = files[:n]
    if not files:
        raise FileNotFoundError(f"{images}: no .JPEG images")
    xs, ys, bs = [], [], []
    for f in tqdm(files, desc="ImageNet boxes", disable=not verbose):
        xml = annotations / f"{f.stem}.xml"
        if not xml.is_file():
            raise FileNotFoundError(f"{xml}: missing annotation for {f.name}")
        (w, h), objs = read_voc_boxes(xml)
        wnid = objs[0][0]
        if wnid not in index:
            raise ValueError(f"{xml}: class {wnid} is not in the class list")
        box = max((b for o, b in objs if o == wnid), key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
        img = load_image(f).resize((size, size), Image.BILINEAR)
        xs.append(torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1))
        ys.append(index[wnid])
        sx, sy = size / w, size / h
        bs.append([round(box[0] * sx), round(box[1] * sy), max(round(box[2] * sx), round(box[0] * sx) + 1),
                   max(round(box[3] * sy), round(box[1] * sy) + 1)])
    return LocalisationSet(torch.stack(xs), torch.tensor(ys), torch.tensor(bs, dtype=torch.int64),
                           tuple(f.stem for f in files))


def side_by_side(images: Iterable[Image.Image], height: int = 224) -> Image.Image:
    """Photos resized to a common height (aspect kept) and placed left to right.

    Chapter 2 builds an image holding two objects with it.

    Parameters
    ----------
    images : iterable of PIL images
        The photos, left to right.
    height : int
        Height of the result in pixels.

    Returns
    -------
    PIL.Image.Image
        RGB image of the given height, as wide as the resized photos together.
    """
    parts = [to_rgb(im) for im in images]
    if not parts:
        raise ValueError("expected at least one image, got none")
    parts = [im.resize((max(1, round(im.width * height / im.height)), height), Image.BILINEAR) for im in parts]
    out = Image.new("RGB", (sum(p.width for p in parts), height))
    left = 0
    for p in parts:
        out.paste(p, (left, 0))
        left += p.width
    return out


# ----------------------------------------------------------------------------
# photo folders in the layouts of ImageNet-V2, Caltech-256 and PASCAL VOC
# ----------------------------------------------------------------------------

LAYOUTS = ("imagenet_v2", "caltech256", "voc")
_PHOTO_SUFFIXES = (".jpeg", ".jpg", ".png")


@dataclass(frozen=True)
class PhotoFolder:
    """Photos of a labelled folder; images are read when asked for.

    Attributes
    ----------
    paths : tuple of Path
        The image files.
    labels : tuple of str
        Each photo's label in the data set's own vocabulary: the ImageNet class index
        (as a string) for ImageNet-V2, the category for Caltech-256, the first
        annotated object's class for PASCAL VOC.
    layout : str
        One of :data:`LAYOUTS`.
    """

    paths: tuple
    labels: tuple
    layout: str

    def __len__(self) -> int:
        return len(self.paths)

    def image(self, i: int) -> Image.Image:
        """Photo ``i`` as an RGB PIL image."""
        return load_image(self.paths[i])

    def batch(self, preprocess: Callable[[Image.Image], torch.Tensor], indices: Iterable[int] | None = None) -> torch.Tensor:
        """Preprocessed photos (all, or ``indices``) stacked: (N, 3, H, W)."""
        idx = range(len(self)) if indices is None else indices
        return torch.stack([preprocess(self.image(i)) for i in idx])


def photo_folder(root: str | Path, layout: str, n: int | None = None, seed: int = 0, split: str = "val") -> PhotoFolder:
    """Read a photo folder laid out as ImageNet-V2, Caltech-256 or PASCAL VOC.

    Chapter 4 explains these data sets' photos with the classifier's own predicted
    label, as the ConvAD paper does; the folder's labels are kept for reference.

    Parameters
    ----------
    root : path
        ``imagenet_v2``: ``root/<class index 0-999>/<name>.jpeg`` (the
        ``imagenetv2-*-format-val`` folders); ``caltech256``:
        ``root/<NNN.category>/<NNN_XXXX>.jpg`` (``256_ObjectCategories``); ``voc``:
        ``root/JPEGImages``, ``root/Annotations`` and optionally
        ``root/ImageSets/Main/<split>.txt`` (a ``VOCdevkit/VOC2012`` folder).
    layout : {"imagenet_v2", "caltech256", "voc"}
        The layout.
    n : int, optional
        Draw ``n`` photos at random (seeded) instead of all.
    seed : int
        Seed of the draw.
    split : str
        VOC's image set, when the list exists.

    Returns
    -------
    PhotoFolder
    """
    root = Path(root)
    if layout not in LAYOUTS:
        raise ValueError(f"expected layout in {LAYOUTS}, got {layout!r}")
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder; download the data set and pass its root")
    pics = lambda d: sorted(p for p in d.iterdir() if p.suffix.lower() in _PHOTO_SUFFIXES)  # noqa: E731
    paths, labels = [], []
    if layout == "imagenet_v2":
        for d in sorted((d for d in root.iterdir() if d.is_dir() and d.name.isdigit()), key=lambda d: int(d.name)):
            if not 0 <= int(d.name) < 1000:
                raise ValueError(f"{d}: ImageNet-V2 class folders are named 0 to 999")
            paths += pics(d)
            labels += [d.name] * (len(paths) - len(labels))
    elif layout == "caltech256":
        for d in sorted(d for d in root.iterdir() if d.is_dir() and "." in d.name and d.name.split(".")[0].isdigit()):
            paths += pics(d)
            labels += [d.name.split(".", 1)[1]] * (len(paths) - len(labels))
    else:
        jpegs, notes = root / "JPEGImages", root / "Annotations"
        if not jpegs.is_dir() or not notes.is_dir():
            raise FileNotFoundError(f"{root}: expected JPEGImages/ and Annotations/ (a VOCdevkit/VOC20xx folder)")
        listing = root / "ImageSets" / "Main" / f"{split}.txt"
        stems = listing.read_text().split() if listing.is_file() else [p.stem for p in pics(jpegs)]
        for stem in stems:
            p = jpegs / f"{stem}.jpg"
            if p.is_file() and (notes / f"{stem}.xml").is_file():
                paths.append(p)
                labels.append(read_voc_boxes(notes / f"{stem}.xml")[1][0][0])
    if not paths:
        raise FileNotFoundError(f"{root}: no photos in the {layout} layout")
    if n is not None and n < len(paths):
        keep = sorted(np.random.default_rng(seed).choice(len(paths), n, replace=False))
        paths, labels = [paths[i] for i in keep], [labels[i] for i in keep]
    return PhotoFolder(tuple(paths), tuple(labels), layout)
