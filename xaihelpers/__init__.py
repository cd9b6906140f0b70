"""Helper package of the executable book *Explaining image classifiers*.

Every chapter imports it as ``import xaihelpers as xh``. The modules are small
and named after what they hold:

``runtime``
    device choice, seeding, the ``SMOKE`` flag and timing ratios (chapter 0).
``results``
    the numbers a chapter cites: glued, read back by the tests, rounded one way; the
    chapters' measured run times.
``models``
    the offline EfficientNet-Lite0 and torchvision's online classifiers, any model by
    name, every method's default layer (chapter 0).
``benchmark_models``
    the cluttered Fashion-MNIST CNN family, its checkpoints and its training (chapter 1).
``data``
    the sample photos, reading a reader's own image, batches for a model (chapter 0).
``benchmark``
    Fashion-MNIST and the cluttered Fashion-MNIST localisation benchmark (chapter 1).
``folders``
    ImageNet validation images with boxes, photo folders of ImageNet-V2, Caltech-256
    and PASCAL VOC, Imagenette / Imagewoof and CIFAR-100 with their download (the
    full-scale paths).
``hooks``
    recording activations and gradients of named layers (chapter 0).
``baselines``
    vanilla gradient and Grad-CAM written out (chapter 0); ``explain``, one call for
    the baselines of captum, zennit and pytorch-grad-cam (chapter 1).
``gfi``
    Guided Feature Inversion (Du et al. 2018), Eq. 1-4 and the two-stage
    optimisation (chapter 2).
``perturbation``
    Fong & Vedaldi's meaningful-perturbation mask, GFI's baseline (chapter 2).
``occlusion``
    hiding part of an image: the blend of Eq. 1, backgrounds, painting values, fills
    and backgrounds without class evidence (chapters 1-6).
``srd``, ``apop``
    Sharing Ratio Decomposition (Han et al. 2024) and activation-pattern-only
    prediction (chapter 3).
``attack``
    the explanation manipulation of Dombrowski et al., with a differentiable SRD
    (chapter 3).
``convad``, ``causal``, ``causal_study``
    Activation-Deactivation (Chanchal et al. 2025); the causal responsibility search
    (ReX); chapter 4's experiments with it: the planting test of robustness and every
    occlusion method compared (chapter 4).
``actmatch``
    Activation Matching (Suhail et al. 2025), per image and amortised (chapter 5).
``exercises``
    the check cells of the exercises: the reader's answer against a reference
    computed from the reader's own objects (every chapter).
``explainers``
    every explanation method of the book by name, one call for all:
    ``xh.explainers.get("srd_input")(model, x, target)`` returns maps (N, h, w) on
    ``x``'s device (chapters 1-6).
``evaluation``
    the one harness: runs explainers over a data set and scores them with the metrics
    (chapters 1, 2, 3 and 6).
``explorer``
    an ipywidgets explorer for the reader's own photo: any method of the book, class,
    model and main setting, computed on a button press (chapters 0 and 6).
``compare``
    chapter 6's tables: means with standard errors, ranks, agreement, claims.
``papers``
    the numbers the papers report, beside ours.
``metrics``
    metrics that read the maps alone: localisation, sparseness, similarity between
    maps, exact top-k pixel rankings (chapter 1).
``model_metrics``
    metrics that query the model: fidelity, stability, deletion and insertion, the
    smallest sufficient share (chapter 1).
``sanity``
    the model- and data-randomisation sanity checks (chapters 1 and 6).
``stats``
    methods compared on the same images: paired differences and bootstrap ranks.
``validity``
    the ground-truth check every metric passes before it ranks: the object mask against
    its inverse and random masks of the same area (chapter 1).
``viz``
    images, heat-map overlays and grids of maps.
"""

from . import actmatch, apop, attack, baselines, benchmark, benchmark_models, causal, causal_study, compare, convad, data, evaluation, exercises, explainers, explorer, folders, gfi, hooks, metrics, model_metrics, models, occlusion, papers, perturbation, results, runtime, sanity, srd, stats, validity, viz
from .data import load_image, sample_images
from .hooks import record
from .models import load_model
from .runtime import device, seed_everything, smoke

__version__ = "0.1.0"

__all__ = [
    "actmatch",
    "apop",
    "attack",
    "baselines",
    "benchmark",
    "benchmark_models",
    "causal",
    "causal_study",
    "compare",
    "exercises",
    "explainers",
    "explorer",
    "folders",
    "convad",
    "data",
    "evaluation",
    "gfi",
    "hooks",
    "metrics",
    "model_metrics",
    "models",
    "occlusion",
    "papers",
    "perturbation",
    "results",
    "runtime",
    "sanity",
    "stats",
    "validity",
    "srd",
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
