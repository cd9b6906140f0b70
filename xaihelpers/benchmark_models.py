"""The benchmark CNNs of chapter 1: one small residual CNN per activation, trained on cluttered Fashion-MNIST.

:class:`BenchmarkCNN` is the architecture; the committed checkpoints (``checkpoints/``,
with their manifest) are loaded by :func:`load_benchmark_model` (or
``xh.load_model("fmnist_cnn_<activation>")``) and reproduced by
``scripts/train_benchmark_models.py`` (:func:`train_benchmark_model`); chapter 6's
sanity check adds a network trained on shuffled labels (:func:`load_shuffled_label_model`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from .models import LoadedModel, Preprocess

# The cluttered Fashion-MNIST benchmark CNNs of chapter 1, one per activation.
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "leaky_relu": lambda: nn.LeakyReLU(0.1),
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
}
# The ReLU CNN trained on the "small" setting of the benchmark (xaihelpers.benchmark.BENCHMARK_SETTINGS)
SMALL_NAME = "relu_small"
BENCHMARK_MODELS = tuple(f"fmnist_cnn_{a}" for a in ACTIVATIONS) + (f"fmnist_cnn_{SMALL_NAME}",)
BENCHMARK_MEAN = (0.5,) * 3
BENCHMARK_STD = (0.25,) * 3
BENCHMARK_SIZE = 64


# ----------------------------------------------------------------------------
# The cluttered Fashion-MNIST benchmark CNNs (chapter 1)
# ----------------------------------------------------------------------------

CHECKPOINT_DIR = Path(__file__).parent / "checkpoints"
TRAIN_SEED = 0
TRAIN_SETTINGS = {"n_train": 20000, "epochs": 12, "batch_size": 128, "lr": 3e-3, "weight_decay": 5e-4}


def _activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"expected an activation in {tuple(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]()


class ResidualBlock(nn.Module):
    """``act(x + bn2(conv2(act(bn1(conv1(x))))))``, channels and size kept.

    The modules are registered in the order of the forward pass, so that zennit's
    ``SequentialMergeBatchNorm`` finds each batch norm right after its convolution.
    """

    def __init__(self, channels: int, activation: str = "relu") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.act1 = _activation(activation)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.act2 = _activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        return self.act2(x + out)


class BenchmarkCNN(nn.Module):
    """The small CNN family of the cluttered Fashion-MNIST benchmark.

    conv-BN-act-maxpool twice, a residual block, conv-BN-act-maxpool, a second
    residual block, global average pooling and a linear head; the
    last feature map (``features.res2``) is 8x8 for 64x64 inputs. Only the activation differs
    between members of the family.

    Parameters
    ----------
    activation : str
        One of :data:`ACTIVATIONS`.
    width : int
        Channels of the first convolution; later stages have 2x and 4x.
    num_classes : int
        Output classes (10 for Fashion-MNIST).
    """

    def __init__(self, activation: str = "relu", width: int = 16, num_classes: int = 10) -> None:
        super().__init__()
        _activation(activation)
        self.activation = activation
        w = width

        def stage(c_in: int, c_out: int, i: int) -> list[tuple[str, nn.Module]]:
            return [(f"conv{i}", nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)), (f"bn{i}", nn.BatchNorm2d(c_out)),
                    (f"act{i}", _activation(activation)), (f"pool{i}", nn.MaxPool2d(2))]

        layers = stage(3, w, 1) + stage(w, 2 * w, 2) + [("res1", ResidualBlock(2 * w, activation))]
        layers += stage(2 * w, 4 * w, 3) + [("res2", ResidualBlock(4 * w, activation))]
        from collections import OrderedDict

        self.features = nn.Sequential(OrderedDict(layers))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(4 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.pool(self.features(x))))


def benchmark_preprocess() -> Preprocess:
    """Preprocessing of the benchmark CNNs: 64x64, pixels normalised by mean 0.5, std 0.25."""
    from .models import Preprocess

    return Preprocess(BENCHMARK_SIZE, BENCHMARK_SIZE, BENCHMARK_MEAN, BENCHMARK_STD)


def checkpoint_path(activation: str) -> Path:
    """Where the committed checkpoint of the benchmark CNN with ``activation`` (or :data:`SMALL_NAME`) lives."""
    if activation != SMALL_NAME:
        _activation(activation)
    return CHECKPOINT_DIR / f"fmnist_cnn_{activation}.pt"


def checkpoint_manifest() -> dict:
    """The committed checkpoints' manifest: sha256, test accuracy, seed and settings per activation."""
    import json

    path = CHECKPOINT_DIR / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``model`` on normalised images ``x`` (N, 3, H, W) with labels ``y`` (N,)."""
    dev = next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            correct += (model(x[i : i + batch_size].to(dev)).argmax(1).cpu() == y[i : i + batch_size].cpu()).sum().item()
    model.train(was_training)
    return correct / len(x)


def train_classifier(
    model: nn.Module,
    data: tuple[torch.Tensor, torch.Tensor] | Callable[[int], tuple[torch.Tensor, torch.Tensor]],
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 3e-3,
    weight_decay: float = 5e-4,
    seed: int = 0,
    flip: bool = True,
    verbose: bool = True,
) -> list[float]:
    """Train a classifier with AdamW and a one-cycle learning-rate schedule.

    Parameters
    ----------
    model : nn.Module
        The network, trained in place on its own device.
    data : (torch.Tensor, torch.Tensor) or callable
        Normalised training images (N, 3, H, W) and labels (N,), or a function
        ``data(epoch) -> (images, labels)`` giving fresh ones for each epoch (all
        epochs the same N).
    epochs, batch_size, lr, weight_decay : int, int, float, float
        Optimisation settings; ``lr`` is the one-cycle peak.
    seed : int
        Seeds the shuffling and initialisation-independent randomness.
    flip : bool
        Augment with random horizontal flips.
    verbose : bool
        Show a progress bar over the batches.

    Returns
    -------
    list of float
        Mean training loss per epoch.
    """
    from tqdm.auto import tqdm

    dev = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    fetch = data if callable(data) else (lambda epoch: data)
    x, y = fetch(0)
    steps = epochs * math.ceil(len(x) / batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    losses = []
    model.train()
    bar = tqdm(total=steps, desc=f"training {type(model).__name__}", disable=not verbose)
    for epoch in range(epochs):
        if epoch > 0 and callable(data):
            x, y = fetch(epoch)
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(x), batch_size):
            idx = order[i : i + batch_size]
            xb, yb = x[idx], y[idx]
            if flip:
                f = (torch.rand(len(idx), generator=gen) < 0.5).to(xb.device)
                xb = torch.where(f[:, None, None, None], xb.flip(-1), xb)
            loss = F.cross_entropy(model(xb.to(dev)), yb.to(dev))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
        losses.append(total / len(x))
    bar.close()
    model.eval()
    return losses


def train_benchmark_model(
    activation: str = "relu",
    seed: int = TRAIN_SEED,
    device: torch.device | str | None = None,
    data_root: str | Path | None = None,
    verbose: bool = True,
    setting: str = "standard",
    **settings,
) -> tuple[BenchmarkCNN, float]:
    """Train one benchmark CNN on cluttered Fashion-MNIST with the book's recipe.

    Each epoch trains on ``n_train`` freshly generated images from Fashion-MNIST's
    train split (seed ``1000 * seed + epoch``); the test set is the 10,000 images
    generated from its test split with seed 0.

    Parameters
    ----------
    activation : str
        One of :data:`ACTIVATIONS`.
    seed : int
        Seeds initialisation, data generation and shuffling.
    device : torch.device or str, optional
        Where to train; default :func:`xaihelpers.runtime.device`.
    data_root : str or pathlib.Path, optional
        Folder with Fashion-MNIST's idx files.
    verbose : bool
        Show progress bars.
    setting : {"standard", "small"}
        Which images of :data:`xaihelpers.benchmark.BENCHMARK_SETTINGS` to train and test on.
    **settings
        Overrides of :data:`TRAIN_SETTINGS` (``n_train`` images per epoch, ``epochs``,
        ``batch_size``, ``lr``, ``weight_decay``).

    Returns
    -------
    (BenchmarkCNN, float)
        The trained model in eval mode and its test accuracy.
    """
    from .benchmark import cluttered_fashion_mnist
    from .runtime import device as pick_device
    from .runtime import seed_everything

    unknown = set(settings) - set(TRAIN_SETTINGS)
    if unknown:
        raise TypeError(f"unknown training settings {sorted(unknown)}; expected some of {sorted(TRAIN_SETTINGS)}")
    cfg = {**TRAIN_SETTINGS, **settings}
    seed_everything(seed)
    norm = benchmark_preprocess().normalize

    def epoch_data(epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        # fresh images every epoch: other items, backgrounds and placements, so no image is seen twice
        train = cluttered_fashion_mnist("train", n=cfg["n_train"], size=BENCHMARK_SIZE, seed=1000 * seed + epoch,
                                        root=data_root, verbose=False, setting=setting)
        return norm(train.images), train.labels

    model = BenchmarkCNN(activation).to(pick_device(None if device is None else str(device)))
    train_classifier(model, epoch_data, epochs=cfg["epochs"], batch_size=cfg["batch_size"],
                     lr=cfg["lr"], weight_decay=cfg["weight_decay"], seed=seed, verbose=verbose)
    test = cluttered_fashion_mnist("test", n=10000, size=BENCHMARK_SIZE, seed=0, root=data_root, verbose=verbose,
                                   setting=setting)
    return model, accuracy(model, norm(test.images), test.labels)


# Adebayo et al.'s data-randomisation check: the ReLU CNN memorises one fixed training set
# whose labels were permuted at random, so it learns nothing a test image could generalise to.
SHUFFLED_NAME = "relu_shuffled_labels"
SHUFFLED_SETTINGS = {"n_train": 1000, "epochs": 80, "batch_size": 100, "lr": 3e-3, "weight_decay": 0.0}


def shuffled_label_data(seed: int = TRAIN_SEED, n_train: int = SHUFFLED_SETTINGS["n_train"],
                        data_root: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The fixed training set of the shuffled-label CNN: normalised images, permuted labels, true labels."""
    from .benchmark import cluttered_fashion_mnist

    train = cluttered_fashion_mnist("train", n=n_train, size=BENCHMARK_SIZE, seed=1000 * seed + 999, root=data_root,
                                    verbose=False)
    gen = torch.Generator().manual_seed(seed)
    return benchmark_preprocess().normalize(train.images), train.labels[torch.randperm(n_train, generator=gen)], train.labels


def train_shuffled_label_model(seed: int = TRAIN_SEED, device: torch.device | str | None = None,
                               data_root: str | Path | None = None, verbose: bool = True,
                               **settings) -> tuple[BenchmarkCNN, float, float]:
    """Train the ReLU benchmark CNN on :func:`shuffled_label_data` (Adebayo et al. 2018's data randomisation).

    The same architecture as the benchmark model, trained without augmentation on one
    fixed set of ``n_train`` images whose labels are a random permutation of theirs,
    until it has memorised them. Its explanations show what a method draws when the
    network has learned no relation between images and classes.

    Returns
    -------
    (BenchmarkCNN, float, float)
        The model in eval mode, its accuracy on the permuted training labels (how well it
        memorised them) and on the benchmark's test split (chance is about 0.1).
    """
    from .benchmark import cluttered_fashion_mnist
    from .runtime import device as pick_device
    from .runtime import seed_everything

    unknown = set(settings) - set(SHUFFLED_SETTINGS)
    if unknown:
        raise TypeError(f"unknown training settings {sorted(unknown)}; expected some of {sorted(SHUFFLED_SETTINGS)}")
    cfg = {**SHUFFLED_SETTINGS, **settings}
    seed_everything(seed)
    x, y, _ = shuffled_label_data(seed, cfg["n_train"], data_root)
    model = BenchmarkCNN("relu").to(pick_device(None if device is None else str(device)))
    train_classifier(model, (x, y), epochs=cfg["epochs"], batch_size=cfg["batch_size"], lr=cfg["lr"],
                     weight_decay=cfg["weight_decay"], seed=seed, flip=False, verbose=verbose)
    test = cluttered_fashion_mnist("test", n=2000, size=BENCHMARK_SIZE, seed=0, root=data_root, verbose=False)
    norm = benchmark_preprocess().normalize
    return model, accuracy(model, x, y), accuracy(model, norm(test.images), test.labels)


def _load_checkpointed(path: Path, key: str, train, script: str, device, train_if_missing: bool) -> LoadedModel:
    """A benchmark CNN from ``path`` (checked against the manifest's ``key``), the cache, or trained.

    The committed checkpoint must match ``checkpoints/manifest.json``; without it a copy
    cached in :func:`xaihelpers.benchmark.data_dir` is used, or ``train()`` builds one (and it
    is cached), or, with ``train_if_missing=False``, a ``WeightsUnavailableError`` names
    both paths and the training ``script``.
    """
    from .benchmark import FASHION_CLASSES, data_dir
    from .models import LoadedModel, WeightsUnavailableError
    from .runtime import device as pick_device

    cached = data_dir() / "checkpoints" / path.name
    model = BenchmarkCNN("relu" if key not in ACTIVATIONS else key)
    if path.is_file():
        expected = checkpoint_manifest().get(key, {}).get("sha256")
        actual = file_sha256(path)
        if expected is not None and expected != actual:
            raise WeightsUnavailableError(f"checkpoint {path} has sha256 {actual}, but checkpoints/manifest.json "
                                          f"expects {expected}; restore it with git or retrain with {script}")
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    elif cached.is_file():
        model.load_state_dict(torch.load(cached, map_location="cpu", weights_only=True))
    elif train_if_missing:
        model = train()
        cached.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), cached)
    else:
        raise WeightsUnavailableError(f"no checkpoint {path.name} at {path} or {cached}; train it with {script} "
                                      "or call with train_if_missing=True")
    model.eval().to(pick_device(None if device is None else str(device)))
    model.xai_name = path.stem  # type: ignore[assignment]
    return LoadedModel(model, benchmark_preprocess(), list(FASHION_CLASSES))


def load_shuffled_label_model(device: torch.device | str | None = None, train_if_missing: bool = True,
                              verbose: bool = True) -> LoadedModel:
    """The shuffled-label CNN (:func:`train_shuffled_label_model`) from its committed checkpoint.

    Checked against ``checkpoints/manifest.json`` like :func:`load_benchmark_model`; when
    the checkpoint is missing it is trained (minutes on a CPU) and cached in
    :func:`xaihelpers.benchmark.data_dir`, or, with ``train_if_missing=False``, a
    ``WeightsUnavailableError`` names both paths.
    """
    return _load_checkpointed(CHECKPOINT_DIR / f"fmnist_cnn_{SHUFFLED_NAME}.pt", SHUFFLED_NAME,
                              lambda: train_shuffled_label_model(device="cpu", verbose=verbose)[0],
                              "scripts/train_benchmark_models.py --shuffled-labels", device, train_if_missing)


def load_benchmark_model(
    activation: str = "relu",
    device: torch.device | str | None = None,
    train_if_missing: bool = True,
    verbose: bool = True,
) -> LoadedModel:
    """Load a cluttered Fashion-MNIST CNN from its committed checkpoint.

    The checkpoint's SHA-256 is checked against ``checkpoints/manifest.json``. When the
    checkpoint is missing, the model is trained with :func:`train_benchmark_model`
    (minutes on a CPU) and cached in :func:`xaihelpers.benchmark.data_dir`.

    Parameters
    ----------
    activation : str
        One of :data:`ACTIVATIONS`, or :data:`SMALL_NAME` for the ReLU CNN of the benchmark's
        ``"small"`` setting.
    device : torch.device or str, optional
        Where to put the model; default :func:`xaihelpers.runtime.device`.
    train_if_missing : bool
        Train when no checkpoint exists; otherwise raise ``WeightsUnavailableError``.
    verbose : bool
        Show progress bars when training.

    Returns
    -------
    LoadedModel
        ``(model, preprocess, classes)`` with the model in eval mode, mapping
        (N, 3, 64, 64) to (N, 10) logits.
    """
    act, setting = ("relu", "small") if activation == SMALL_NAME else (activation, "standard")
    return _load_checkpointed(checkpoint_path(activation), activation,
                              lambda: train_benchmark_model(act, device="cpu", verbose=verbose, setting=setting)[0],
                              "scripts/train_benchmark_models.py" + (" --small" if setting == "small" else ""),
                              device, train_if_missing)


# ----------------------------------------------------------------------------
# ResNets on CIFAR-100 with each activation: SRD's Table 4 at the paper's setting (chapter 3, FULL)
# ----------------------------------------------------------------------------

CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)


def cifar_resnet(activation: str = "relu", arch: str = "resnet18", num_classes: int = 100) -> nn.Module:
    """A torchvision ResNet for 32x32 images, with every ReLU replaced by ``activation``.

    The usual CIFAR stem: a 3x3 convolution of stride 1 and no max pooling, so that the
    last block still sees a 4x4 map. Each activation is a module of its own (torchvision
    reuses one ReLU twice per block), so hooks see every use separately.

    Parameters
    ----------
    activation : str
        One of :data:`ACTIVATIONS`.
    arch : {"resnet18", "resnet34", "resnet50"}
        SRD's Table 4 uses ResNet-50.
    """
    import torchvision

    if arch not in ("resnet18", "resnet34", "resnet50"):
        raise ValueError(f"expected arch 'resnet18', 'resnet34' or 'resnet50', got {arch!r}")
    _activation(activation)  # checks the name
    net = getattr(torchvision.models, arch)(weights=None, num_classes=num_classes)
    net.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    net.maxpool = nn.Identity()

    def replace(module: nn.Module) -> None:
        for name, child in module.named_children():
            if isinstance(child, nn.ReLU):
                setattr(module, name, _activation(activation))
            else:
                replace(child)

    replace(net)
    # blocks call self.relu two or three times: give each call a module of its own
    for block in [m for m in net.modules() if isinstance(m, (torchvision.models.resnet.BasicBlock,
                                                             torchvision.models.resnet.Bottleneck))]:
        block.relu_out = _activation(activation)
        if isinstance(block, torchvision.models.resnet.Bottleneck):
            block.relu_mid = _activation(activation)
        block.forward = _block_forward.__get__(block)
    return net


def _block_forward(self, x: torch.Tensor) -> torch.Tensor:
    """torchvision's residual block, with the activation after the sum a module of its own."""
    identity = x if self.downsample is None else self.downsample(x)
    out = self.relu(self.bn1(self.conv1(x)))
    if hasattr(self, "conv3"):  # Bottleneck
        out = self.relu_mid(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
    else:
        out = self.bn2(self.conv2(out))
    return self.relu_out(out + identity)


def cifar_preprocess() -> Preprocess:
    """Normalisation of the CIFAR-100 networks (32x32, the training set's channel means and deviations)."""
    from .models import Preprocess

    return Preprocess(32, 32, CIFAR100_MEAN, CIFAR100_STD)


def train_cifar100(data, activation: str = "relu", arch: str = "resnet18", epochs: int = 15, batch_size: int = 128,
                   lr: float = 3e-3, seed: int = TRAIN_SEED, device: torch.device | str | None = None,
                   verbose: bool = True) -> nn.Module:
    """Train :func:`cifar_resnet` on CIFAR-100's training split (random 4-pixel shifts and flips).

    Parameters
    ----------
    data : xaihelpers.folders.Cifar100
        The training split (:func:`xaihelpers.folders.cifar100` ``(root, "train")``).
    activation, arch :
        As in :func:`cifar_resnet`.
    epochs, batch_size, lr, seed :
        As in :func:`train_classifier` (AdamW, one-cycle schedule).

    Returns
    -------
    nn.Module
        The trained network in eval mode, on ``device``; its inputs are normalised by
        :func:`cifar_preprocess`.
    """
    from .runtime import device as pick_device

    dev = pick_device(None if device is None else str(device))
    torch.manual_seed(seed)
    model = cifar_resnet(activation, arch).to(dev)
    x = cifar_preprocess().normalize(data.images.float() / 255)  # on the CPU: train_classifier moves each batch
    y = data.labels
    gen = torch.Generator().manual_seed(seed)

    def shifted(epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        return random_shifts(x, 4, gen), y

    train_classifier(model, shifted, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, verbose=verbose)
    return model


def random_shifts(x: torch.Tensor, pad: int, generator: torch.Generator, chunk: int = 4096) -> torch.Tensor:
    """Each image shifted by its own random offset of up to ``pad`` pixels, the border filled with zeros.

    The usual CIFAR augmentation: a random crop of the zero-padded image, of the image's own size.
    """
    n, c, h, w = x.shape
    off = torch.randint(0, 2 * pad + 1, (2, n), generator=generator).to(x.device)
    padded = F.pad(x, (pad, pad, pad, pad))
    out = torch.empty_like(x)
    ch, rr, cc = (torch.arange(k, device=x.device) for k in (c, h, w))
    for i in range(0, n, chunk):
        j = torch.arange(i, min(i + chunk, n), device=x.device)
        rows = (off[1, j, None] + rr)[:, None, :, None]
        cols = (off[0, j, None] + cc)[:, None, None, :]
        out[j] = padded[j[:, None, None, None], ch[None, :, None, None], rows, cols]
    return out
