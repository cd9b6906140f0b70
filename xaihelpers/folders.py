"""Photo folders for the full-scale paths: ImageNet validation images with their boxes, and folders in the
layouts of ImageNet-V2, Caltech-256 and PASCAL VOC (chapters 2 and 3, online or with the data on disk).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from PIL import Image

from .data import load_image

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
    return _drawn(paths, labels, layout, n, seed)


def _drawn(paths: list, labels: list, layout: str, n: int | None, seed: int) -> PhotoFolder:
    """All the photos, or ``n`` of them drawn at random (seeded), in their listed order."""
    if n is not None and n < len(paths):
        keep = sorted(np.random.default_rng(seed).choice(len(paths), n, replace=False))
        paths, labels = [paths[i] for i in keep], [labels[i] for i in keep]
    return PhotoFolder(tuple(paths), tuple(labels), layout)


# ----------------------------------------------------------------------------
# data sets that download without registration: Imagenette / Imagewoof, CIFAR-100
# ----------------------------------------------------------------------------

IMAGENETTE_CLASSES = {"n01440764": 0, "n02102040": 217, "n02979186": 482, "n03000684": 491, "n03028079": 497,
                      "n03394916": 566, "n03417042": 569, "n03425413": 571, "n03445777": 574, "n03888605": 701}
"""Imagenette's ten WordNet ids -> ImageNet class index (tench, English springer, cassette player,
chain saw, church, French horn, garbage truck, gas pump, golf ball, parachute)."""

IMAGEWOOF_CLASSES = {"n02086240": 155, "n02087394": 159, "n02088364": 162, "n02089973": 167, "n02093754": 182,
                     "n02096294": 193, "n02099601": 207, "n02105641": 229, "n02111889": 258, "n02115641": 273}
"""Imagewoof's ten dog breeds -> ImageNet class index (Shih-Tzu ... dingo): ten classes a classifier confuses."""

FASTAI_URL = "https://s3.amazonaws.com/fast-ai-imageclas/{name}.tgz"
"""Where fast.ai publishes Imagenette and Imagewoof (``imagenette2-320``: 326 MB; ``imagewoof2-320``: 313 MB)."""


def data_cache(cache: str | Path | None = None) -> Path:
    """The folder downloaded data sets are kept in: ``cache``, else ``$XAI_DATA``, else ``~/.cache/xaihelpers``."""
    import os

    return Path(cache or os.environ.get("XAI_DATA") or Path.home() / ".cache" / "xaihelpers").expanduser()


def download_fastai(name: str = "imagenette2-320", cache: str | Path | None = None) -> Path:
    """Download and unpack Imagenette or Imagewoof once; return the folder holding ``train/`` and ``val/``.

    Parameters
    ----------
    name : str
        ``"imagenette2"``, ``"imagenette2-320"``, ``"imagenette2-160"`` or the same with
        ``imagewoof2``.
    cache : path, optional
        See :func:`data_cache`. A folder already unpacked there is used without a download.

    Raises
    ------
    FileNotFoundError
        When the data set is not in the cache and cannot be downloaded (offline); the
        message names the folder to copy it into.
    """
    if not (name.startswith("imagenette2") or name.startswith("imagewoof2")):
        raise ValueError(f"expected an Imagenette or Imagewoof release such as 'imagenette2-320', got {name!r}")
    return _cached(FASTAI_URL.format(name=name), cache, name, "val", name)


def _cached(url: str, cache, name: str, marker: str, what: str) -> Path:
    """The folder ``data_cache(cache) / name``, first downloading and unpacking the archive at ``url``
    there (the archive is kept) unless it holds ``marker``; offline, the error says where it goes."""
    import tarfile
    import urllib.error
    import urllib.request

    root = data_cache(cache)
    folder = root / name
    if (folder / marker).exists():
        return folder
    archive = root / url.rsplit("/", 1)[-1]
    try:
        root.mkdir(parents=True, exist_ok=True)
        if not archive.is_file():
            part = archive.with_name(archive.name + ".part")
            urllib.request.urlretrieve(url, part)
            part.rename(archive)
        with tarfile.open(archive) as tar:
            tar.extractall(root, filter="data")
    except (urllib.error.URLError, OSError, tarfile.TarError) as err:
        raise FileNotFoundError(
            f"{what} is not in {folder} and downloading {url} failed ({type(err).__name__}: {err}). "
            f"Run once with internet access (e.g. on Colab), or unpack that archive into {root} "
            "(set XAI_DATA to move the cache)."
        ) from err
    return folder


def imagenette(root: str | Path, split: str = "val", n: int | None = None, seed: int = 0) -> PhotoFolder:
    """Imagenette or Imagewoof in fast.ai's layout: ``root/<split>/<wnid>/<name>.JPEG``.

    The labels are ImageNet class indices (as strings, like ImageNet-V2's), so that an
    ImageNet classifier's output is scored against them directly.

    Parameters
    ----------
    root : path
        The unpacked folder (what :func:`download_fastai` returns).
    split : {"val", "train"}
    n, seed :
        Draw ``n`` photos at random (seeded) instead of all.
    """
    folder = Path(root) / split
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder; expected {Path(root)}/{{train,val}}/<wnid>/*.JPEG")
    known = {**IMAGENETTE_CLASSES, **IMAGEWOOF_CLASSES}
    paths, labels = [], []
    for d in sorted(p for p in folder.iterdir() if p.is_dir()):
        if d.name not in known:
            raise ValueError(f"{d}: {d.name!r} is not one of Imagenette's or Imagewoof's WordNet ids")
        pics = sorted(p for p in d.iterdir() if p.suffix.lower() in _PHOTO_SUFFIXES)
        paths += pics
        labels += [str(known[d.name])] * len(pics)
    if not paths:
        raise FileNotFoundError(f"{folder}: no photos")
    return _drawn(paths, labels, "imagenette", n, seed)


@dataclass(frozen=True)
class Cifar100:
    """CIFAR-100 as stored by its authors' Python release.

    Attributes
    ----------
    images : torch.Tensor
        uint8, shape (N, 3, 32, 32).
    labels : torch.Tensor
        int64, shape (N,): the fine label (0-99).
    classes : tuple of str
        The 100 fine label names, in label order.
    """

    images: torch.Tensor = field(repr=False)
    labels: torch.Tensor = field(repr=False)
    classes: tuple[str, ...] = field(repr=False)

    def __len__(self) -> int:
        return int(self.labels.shape[0])


CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
"""CIFAR-100's Python release (161 MB), the archive ``torchvision.datasets.CIFAR100`` fetches."""


def download_cifar100(cache: str | Path | None = None) -> Path:
    """CIFAR-100's folder in :func:`data_cache`, downloaded and unpacked on first use (161 MB).

    Offline, without a copy there, ``FileNotFoundError`` names the folder to unpack it into.
    """
    return _cached(CIFAR100_URL, cache, "cifar-100-python", "meta", "CIFAR-100")


def cifar100(root: str | Path, split: str = "test") -> Cifar100:
    """Read CIFAR-100's Python release: ``root/cifar-100-python/{train,test,meta}`` (or ``root`` itself).

    ``torchvision.datasets.CIFAR100(root, download=True)`` downloads the same files (161 MB)
    into ``root``; SRD's Table 4 trains and tests its networks on it.
    """
    import pickle

    if split not in ("train", "test"):
        raise ValueError(f"expected split 'train' or 'test', got {split!r}")
    root = Path(root)
    base = root / "cifar-100-python" if (root / "cifar-100-python").is_dir() else root
    if not (base / split).is_file() or not (base / "meta").is_file():
        raise FileNotFoundError(f"{base}: expected the files '{split}' and 'meta' of cifar-100-python "
                                "(torchvision.datasets.CIFAR100(root, download=True) puts them there)")
    with open(base / split, "rb") as f:
        entry = pickle.load(f, encoding="latin1")
    with open(base / "meta", "rb") as f:
        meta = pickle.load(f, encoding="latin1")
    data = np.asarray(entry["data"], dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{base / split}: expected rows of 3072 bytes, got shape {data.shape}")
    images = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())
    labels = torch.as_tensor(entry["fine_labels"], dtype=torch.int64)
    return Cifar100(images, labels, tuple(meta["fine_label_names"]))


# ----------------------------------------------------------------------------
# PASCAL VOC 2007 boxes for the pointing game and attribution localisation
# ----------------------------------------------------------------------------

VOC_IMAGENET: dict[str, tuple[int, ...]] = {
    "aeroplane": (404, 895, 908),  # airliner, warplane, wing
    "bicycle": (444, 671),  # bicycle-built-for-two, mountain bike
    "bird": tuple(range(7, 25)) + tuple(range(80, 101)) + tuple(range(127, 147)),  # cock ... albatross
    "boat": (472, 484, 510, 554, 576, 625, 628, 724, 780, 814, 833, 871, 914),  # canoe ... yawl
    "bottle": (440, 720, 737, 898, 907),  # beer, pill, pop, water, wine bottle
    "bus": (654, 779, 874),  # minibus, school bus, trolleybus
    "car": (407, 436, 468, 511, 609, 627, 656, 661, 717, 751, 817),  # ambulance ... sports car
    "cat": (281, 282, 283, 284, 285),  # tabby, tiger, Persian, Siamese, Egyptian cat
    "chair": (423, 559, 765, 857),  # barber, folding, rocking chair, throne
    "cow": (345, 346, 347),  # ox, water buffalo, bison
    "diningtable": (532,),
    "dog": tuple(range(151, 269)),  # Chihuahua ... Mexican hairless
    "horse": (339, 603),  # sorrel, horse cart
    "motorbike": (665, 670),  # moped, motor scooter
    "pottedplant": (738,),  # pot, flowerpot
    "sheep": (348, 349),  # ram, bighorn
    "sofa": (831,),  # studio couch
    "train": (466, 547, 565, 705, 820, 829),  # bullet train ... streetcar
    "tvmonitor": (664, 782, 851),  # monitor, screen, television
}
"""VOC's object classes -> the ImageNet classes that name them (drawn up by hand for this book from the
ImageNet category names). VOC's ``person`` has no ImageNet class and is left out."""

VOC2007_URL = "http://host.robots.ox.ac.uk/pascal/VOC/voc2007/VOCtest_06-Nov-2007.tar"
"""The VOC 2007 test set (451 MB, 4,952 photos with their boxes), as ``torchvision.datasets.VOCDetection`` fetches it."""


@dataclass(frozen=True)
class PointingSet:
    """Photos with object masks for the pointing game: one entry per (photo, VOC class it shows).

    Attributes
    ----------
    images : torch.Tensor
        float32 in [0, 1], shape (N, 3, size, size): each photo resized (not cropped).
    masks : torch.Tensor
        bool, shape (N, size, size): the union of the boxes of the entry's class.
    classes : tuple of str
        The VOC class of each entry (a key of :data:`VOC_IMAGENET`).
    names : tuple of str
        ``"<file stem>/<VOC class>"``.
    """

    images: torch.Tensor = field(repr=False)
    masks: torch.Tensor = field(repr=False)
    classes: tuple[str, ...]
    names: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.masks.shape[0])

    def targets(self, logits: torch.Tensor) -> torch.Tensor:
        """The ImageNet class to explain for each entry: the highest logit among its VOC class's ImageNet classes."""
        if logits.ndim != 2 or logits.shape[0] != len(self) or logits.shape[1] < 1000:
            raise ValueError(f"expected ImageNet logits of shape ({len(self)}, 1000), got {tuple(logits.shape)}")
        out = [max(VOC_IMAGENET[c], key=lambda k, row=row: float(row[k])) for c, row in zip(self.classes, logits.cpu())]
        return torch.tensor(out, dtype=torch.int64)


def download_voc2007(cache: str | Path | None = None) -> Path:
    """The PASCAL VOC 2007 test set's ``VOCdevkit/VOC2007`` folder in :func:`data_cache`, downloaded
    and unpacked on first use (451 MB); offline, without a copy there, the ``FileNotFoundError``
    names the folder to unpack it into.
    """
    return _cached(VOC2007_URL, cache, "VOCdevkit/VOC2007", "Annotations", "VOC 2007")


def voc_pointing(root: str | Path, split: str = "test", n: int | None = None, seed: int = 0, size: int = 224,
                 verbose: bool = True) -> PointingSet:
    """PASCAL VOC photos as a pointing-game set for an ImageNet classifier.

    Each photo gives one entry per VOC class it shows that has ImageNet classes
    (:data:`VOC_IMAGENET`; ``person`` has none), with the union of that class's boxes as
    its mask, as in Zhang et al.'s pointing game (a hit anywhere on any box of the class;
    boxes marked ``difficult`` count as well). VOC's coordinates are 1-based and
    inclusive; the masks are 0-based.

    Parameters
    ----------
    root : path
        A ``VOCdevkit/VOC2007`` folder: ``JPEGImages/``, ``Annotations/`` and
        ``ImageSets/Main/<split>.txt`` (what :func:`download_voc2007` returns).
    split : str
        The image set listed in ``ImageSets/Main``.
    n, seed :
        Draw ``n`` photos at random (seeded) instead of all.
    size : int
        Side the photos are resized to; the boxes are scaled with them.
    verbose : bool
        Show a progress bar.
    """
    from tqdm.auto import tqdm

    root = Path(root)
    listing = root / "ImageSets" / "Main" / f"{split}.txt"
    if not listing.is_file() or not (root / "JPEGImages").is_dir() or not (root / "Annotations").is_dir():
        raise FileNotFoundError(f"{root}: expected JPEGImages/, Annotations/ and ImageSets/Main/{split}.txt "
                                "(a VOCdevkit/VOC2007 folder; xh.folders.download_voc2007() fetches the test set)")
    stems = listing.read_text().split()
    if n is not None and n < len(stems):
        stems = [stems[i] for i in sorted(np.random.default_rng(seed).choice(len(stems), n, replace=False))]
    xs, ms, cs, names = [], [], [], []
    for stem in tqdm(stems, desc="VOC boxes", disable=not verbose):
        (w, h), objs = read_voc_boxes(root / "Annotations" / f"{stem}.xml")
        shown = sorted({c for c, _ in objs if c in VOC_IMAGENET})
        if not shown:
            continue
        img = load_image(root / "JPEGImages" / f"{stem}.jpg").resize((size, size), Image.BILINEAR)
        x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1)
        for c in shown:
            m = torch.zeros(size, size, dtype=torch.bool)
            for o, (x0, y0, x1, y1) in objs:
                if o == c:  # read_voc_boxes gives (xmin, ymin, xmax + 1, ymax + 1) in 1-based pixels
                    c0, r0 = int((x0 - 1) * size / w), int((y0 - 1) * size / h)
                    m[r0:max(round((y1 - 1) * size / h), r0 + 1), c0:max(round((x1 - 1) * size / w), c0 + 1)] = True
            xs.append(x); ms.append(m); cs.append(c); names.append(f"{stem}/{c}")
    if not xs:
        raise FileNotFoundError(f"{root}: no photo of {split} shows a class of VOC_IMAGENET")
    return PointingSet(torch.stack(xs), torch.stack(ms), tuple(cs), tuple(names))
