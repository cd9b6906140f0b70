"""Images for the book: the photos that ship with scikit-image, matplotlib and
scikit-learn, and a reader's own files.

Chapter 0 (``notebooks/00_getting_started.ipynb``) shows them and what the
offline classifier makes of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

# PIL modes load_image converts to RGB; anything else is refused.
SUPPORTED_MODES = ("RGB", "RGBA", "L", "LA", "P", "PA", "1", "CMYK", "YCbCr")


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


def load_image(path: str | Path) -> Image.Image:
    """Read an image file as an RGB PIL image.

    Grayscale, palette, CMYK and images with transparency are converted; transparent
    pixels are composited on white.

    Parameters
    ----------
    path : str or pathlib.Path
        The image file.

    Returns
    -------
    PIL.Image.Image
        The image in mode ``"RGB"``.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        When the file is not an image PIL can read, or its mode (e.g. 16-bit or
        floating point) is not one of :data:`SUPPORTED_MODES`.
    """
    if not isinstance(path, (str, Path)):
        raise TypeError(f"expected a file path (str or pathlib.Path), got {type(path).__name__}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no image file at {path}")
    try:
        with Image.open(path) as img:
            img.load()
            return to_rgb(img)
    except UnidentifiedImageError as err:
        raise ValueError(f"expected an image file (PNG, JPEG, ...), but PIL cannot read {path}") from err


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert a PIL image of a supported mode to RGB (transparency composited on white).

    Parameters
    ----------
    img : PIL.Image.Image
        An image whose mode is in :data:`SUPPORTED_MODES`.

    Returns
    -------
    PIL.Image.Image
        A new RGB image of the same size.
    """
    if not isinstance(img, Image.Image):
        raise TypeError(f"expected a PIL image, got {type(img).__name__}")
    if img.mode not in SUPPORTED_MODES:
        raise ValueError(
            f"expected an image in one of the modes {SUPPORTED_MODES}, got mode {img.mode!r}; "
            "convert it to 8-bit RGB first"
        )
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def to_batch(
    images: Iterable[Image.Image | SampleImage],
    preprocess: Callable[[Image.Image], torch.Tensor],
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Preprocess images and stack them into one batch.

    Parameters
    ----------
    images : iterable of PIL images or SampleImage
        The photos.
    preprocess : callable
        PIL image to (3, H, W) tensor, e.g. the one :func:`xaihelpers.load_model` returns.
    device : torch.device or str, optional
        Where to put the batch (default: CPU).

    Returns
    -------
    torch.Tensor
        Shape (N, 3, H, W).
    """
    tensors = []
    for im in images:
        if isinstance(im, SampleImage):
            im = im.image
        if isinstance(im, np.ndarray):
            raise TypeError("expected PIL images; wrap arrays with PIL.Image.fromarray first")
        tensors.append(preprocess(im))
    if not tensors:
        raise ValueError("expected at least one image, got none")
    return torch.stack(tensors).to(device if device is not None else "cpu")
