"""Helper package of the executable book *Explaining image classifiers*.

Every chapter imports it as ``import xaihelpers as xh``. The modules are small
and named after what they hold:

``runtime``
    device choice, seeding and the ``SMOKE`` flag (chapter 0).
``models``
    the offline EfficientNet-Lite0 and torchvision's online classifiers (chapter 0).
``data``
    the sample photos and reading a reader's own image (chapter 0).
``hooks``
    recording activations and gradients of named layers (chapter 0).
``baselines``
    first explanations: vanilla gradient and Grad-CAM (chapter 0).
``viz``
    images, heat-map overlays and grids of maps.
"""

from . import baselines, data, hooks, models, runtime, viz
from .data import load_image, sample_images
from .hooks import record
from .models import load_model
from .runtime import device, seed_everything, smoke

__version__ = "0.1.0"

__all__ = [
    "baselines",
    "data",
    "hooks",
    "models",
    "runtime",
    "viz",
    "load_image",
    "sample_images",
    "record",
    "load_model",
    "device",
    "seed_everything",
    "smoke",
    "__version__",
]
