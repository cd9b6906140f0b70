"""Images for the book: the photos that ship with scikit-image, matplotlib and
scikit-learn, and a reader's own files.

Chapter 0 (``notebooks/00_getting_started.ipynb``) shows them and what the
offline classifier makes of them.
"""

from __future__ import annotations

import os
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

        picture = getattr(skimage.data, name)()
        if isinstance(picture, tuple):  # a stereo pair: the left view
            picture = picture[0]
        return Image.fromarray(picture).convert("RGB")

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
    # 872 tripod, 759 reflex camera (the "cameraman": a camera on a tripod)
    "camera": (_skimage("camera"), (872, 759), "scikit-image: skimage.data.camera"),
    # 665 moped, 670 motor scooter (a motorcycle in a garage; ImageNet has no class "motorcycle")
    "motorcycle": (_skimage("stereo_motorcycle"), (665, 670), "scikit-image: skimage.data.stereo_motorcycle (left view)"),
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


# ImageNet class -> box (x0, y0, x1, y1) in the photo's own pixels, end exclusive: drawn by hand for this book
# on each photo (a grid of 50 px over it), one box per class the photo shows; classes that name the same object
# (espresso and cup; tabby, tiger cat and Egyptian cat) share its box.
PHOTO_BOXES: dict[str, dict[int, tuple[int, int, int, int]]] = {
    "chelsea": {281: (0, 0, 395, 300), 282: (0, 0, 395, 300), 285: (0, 0, 395, 300)},  # the cat's head fills the frame
    "coffee": {967: (170, 15, 425, 310), 968: (170, 15, 425, 310)},  # the cup with its handle, not the saucer
    "rocket": {657: (300, 125, 345, 410), 744: (300, 125, 345, 410)},  # the rocket, not the towers
    "grace_hopper": {652: (20, 315, 512, 600), 667: (150, 20, 375, 150), 906: (215, 405, 300, 470)},  # uniform, cap, tie
    "camera": {872: (225, 195, 410, 512), 759: (255, 135, 330, 195)},  # the tripod, the camera on it
    "motorcycle": {665: (90, 95, 690, 452), 670: (90, 95, 690, 452), 535: (565, 330, 640, 420)},  # bike; disk brake
}


def preprocess_box(box: tuple[int, int, int, int], image_size: tuple[int, int], size: int = 224,
                   resize: int = 256) -> tuple[int, int, int, int]:
    """A box in a photo's pixels, moved to where the classifier's preprocessing puts it.

    The same geometry as :class:`xaihelpers.models.Preprocess`: the shorter side resized
    to ``resize``, then the centre ``size`` x ``size`` crop. The box is clipped to the crop.

    Parameters
    ----------
    box : (x0, y0, x1, y1)
        In the photo's pixels, end exclusive.
    image_size : (width, height)
        The photo's size (``PIL.Image.size``).
    """
    from .models import Preprocess

    (w, h), (x0, y0, x1, y1) = image_size, box
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise ValueError(f"expected a box inside the {w}x{h} photo with x0 < x1 and y0 < y1, got {box}")
    nw, nh, left, top = Preprocess(size, resize).geometry(w, h)
    sx, sy = nw / w, nh / h
    clip = lambda v: int(min(max(round(v), 0), size))  # noqa: E731
    return clip(x0 * sx - left), clip(y0 * sy - top), clip(x1 * sx - left), clip(y1 * sy - top)


def photo_boxes(names: Iterable[str] | None = None, size: int = 224, resize: int = 256) -> dict[str, dict[int, tuple]]:
    """The hand-drawn boxes of the labelled sample photos (:data:`PHOTO_BOXES`), in the preprocessed crop.

    Returns ``{photo: {ImageNet class: (x0, y0, x1, y1)}}`` for the photos asked for (all
    labelled ones by default); a box the crop cuts away entirely is left out.
    """
    wanted = list(PHOTO_BOXES if names is None else ([names] if isinstance(names, str) else names))
    unknown = [n for n in wanted if n not in PHOTO_BOXES]
    if unknown:
        raise ValueError(f"expected photos with boxes, from {tuple(PHOTO_BOXES)}, got {unknown}")
    photos = sample_images(wanted)
    out = {}
    for n in wanted:
        moved = {c: preprocess_box(b, photos[n].image.size, size, resize) for c, b in PHOTO_BOXES[n].items()}
        out[n] = {c: b for c, b in moved.items() if b[2] > b[0] and b[3] > b[1]}
    return out


def photo_localisation(names: Iterable[str] | None = None, size: int = 224, resize: int = 256,
                       one_per_box: bool = False):
    """The labelled sample photos as a localisation set: one entry per (photo, boxed class).

    With ``one_per_box``, classes that share a box (espresso and cup) give one entry, the
    first class's.

    The offline counterpart of :func:`xaihelpers.folders.imagenet_localisation`: images are
    the classifier's centre crops in [0, 1] (normalise them with the model's
    ``Preprocess.normalize``), each with one ImageNet class and its hand-drawn box.

    Returns
    -------
    xaihelpers.folders.LocalisationSet
        ``names`` are ``"<photo>/<class index>"``.
    """
    from .folders import LocalisationSet
    from .models import Preprocess

    crop = Preprocess(size, resize, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # the geometry only: pixels stay in [0, 1]
    boxes = photo_boxes(names, size, resize)
    photos = sample_images(list(boxes))
    xs, ys, bs, keys = [], [], [], []
    for name, per_class in boxes.items():
        x = crop(photos[name].image)
        seen = set()
        for c, b in per_class.items():
            if one_per_box and b in seen:
                continue
            seen.add(b)
            xs.append(x); ys.append(c); bs.append(b); keys.append(f"{name}/{c}")
    return LocalisationSet(torch.stack(xs), torch.tensor(ys), torch.tensor(bs, dtype=torch.int64), tuple(keys))


def box_mask(box: tuple[int, int, int, int], size: int = 224) -> torch.Tensor:
    """A bool (size, size) mask that is True inside the box (end exclusive)."""
    m = torch.zeros(size, size, dtype=torch.bool)
    m[box[1]:box[3], box[0]:box[2]] = True
    return m


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
