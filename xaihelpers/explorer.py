"""An explorer for the reader's own questions: a photo, a model, a class, a method of the book (chapters 0 and 6).

The reader picks a sample photo or uploads one, a classifier, one of its top-5
classes, a method from :mod:`xaihelpers.explainers` and the method's main setting
(:data:`MAIN_SETTINGS`: the layer of the CAM methods, the steps of the optimisations,
the rule of the causal search, ...), then presses *Explain* and sees the map over the
photo, the top-5 before and after the map's top 10 % of pixels are deleted, and how
long the method took. Chapter 0 (``notebooks/00_getting_started.ipynb``) introduces
it; chapter 6 (``notebooks/06_comparison.ipynb``) offers it for every method compared
there.

The logic lives in :class:`Explorer`, plain Python that needs no browser: each widget
calls one method (:meth:`Explorer.select_photo`, :meth:`~Explorer.upload`,
:meth:`~Explorer.select_model`, :meth:`~Explorer.select_class`,
:meth:`~Explorer.select_method`, :meth:`~Explorer.set_setting`,
:meth:`~Explorer.press`), and :meth:`Explorer.run` computes and returns the result
as a dict. Only the top-5 is computed when a choice changes; the method runs on the
button press alone. :meth:`Explorer.panel` builds the ipywidgets (Jupyter, JupyterLab
and Colab); ipywidgets is imported there and nowhere else::

    ex = xh.explorer.Explorer("efficientnet_lite0", photo="coffee", method="gradcam")
    display(ex.panel())           # choose, then press "Explain"
    result = ex.run()             # the same computation without widgets
    result["figure"], result["table"], result["seconds"]
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import nn

from . import convad, data, explainers, hooks, metrics, models, viz
from .runtime import device as pick_device

#: Share of the map's pixels deleted to test it: the top 10 %.
DELETE_SHARE = 0.1
#: How many classes are offered and shown before and after the deletion.
TOP_K = 5

#: Methods that take ten seconds or more on one photo with EfficientNet-Lite0 on a 2-core
#: CPU at the explorer's settings (optimisations, searches, many forward passes: one per
#: channel, window, noisy copy or integration step); their names in the menu say "slow".
#: The others take under about two seconds there.
SLOW = ("gfi", "mask", "causal", "actmatch", "scorecam", "ablationcam", "occlusion", "integrated_gradients",
        "smoothgrad", "fullgrad")

#: Methods of the registry that the explorer leaves out, and why.
LEFT_OUT = {"actmatch_amortised": "needs a mask network trained on many images (chapter 5)"}

#: Settings fixed for a method besides its main one, shown in every result: the causal
#: search with 4 partition trees instead of ReX's 20 (67 s a photo on a CPU), and
#: Activation Matching with chapter 6's schedule for photos (a learning rate of 1e-3 and
#: a narrower U-Net than the authors' 880 steps at 5e-5 with widths 32-256).
FIXED: dict[str, dict] = {
    "causal": {"iters": 4},
    "actmatch": {"lr": 1e-3, "widths": (16, 32, 64, 128), "bottleneck": 256},
}

# modules not offered as a CAM's layer: pre-activation values, padding, and containers (the same
# output as their last module)
_NOT_A_STAGE = (nn.Conv2d, nn.BatchNorm2d, nn.Dropout, models.SamePad2d, nn.Sequential, nn.ModuleList)


@dataclass(frozen=True)
class Setting:
    """The main setting of one method, as the explorer offers it.

    Attributes
    ----------
    name : str
        The keyword the method takes, e.g. ``"layer"`` or ``"iterations"``.
    kind : {"layer", "choice", "int"}
        ``"layer"``: one of :func:`feature_layers` of the model (a drop-down);
        ``"choice"``: one of ``options``; ``"int"``: an integer from ``low`` to ``high``.
    default : object
        The value offered first; ``None`` for a layer means the method's own default
        layer, and for ``occlusion``'s window an eighth of the image side.
    options : tuple
        The choices of a ``"choice"`` setting.
    low, high, step : int
        The range of an ``"int"`` setting; ``high`` 0 means half the image side.
    """

    name: str
    kind: str
    default: object = None
    options: tuple = ()
    low: int = 1
    high: int = 0
    step: int = 1


_REDUCTIONS = ("absmax", "sum", "abssum", "mean")  # how the channels become one map (baselines.explain's reduce)
_ABSMAX = Setting("reduce", "choice", "absmax", _REDUCTIONS)
_SUM = Setting("reduce", "choice", "sum", _REDUCTIONS)
_LAYER = Setting("layer", "layer")
_SRD_RULE = Setting("rule", "choice", "contrastive", ("contrastive", "identity", "constant"))

#: The one setting the explorer offers per method (``None``: the method has none to choose).
MAIN_SETTINGS: dict[str, Setting | None] = {
    "saliency": _ABSMAX,
    "guided_backprop": _SUM,
    "input_x_gradient": _SUM,
    "gradient": Setting("reduce", "choice", "absmax", ("absmax", "abssum", "sum")),
    "integrated_gradients": Setting("n_steps", "int", 32, low=4, high=128, step=4),
    "smoothgrad": Setting("nt_samples", "int", 25, low=5, high=100, step=5),
    "occlusion": Setting("window", "int", None, low=2, high=0, step=1),
    "lrp_epsilon_plus": Setting("epsilon", "choice", 1e-6, (1e-6, 1e-3, 1e-2, 0.1, 1.0)),
    "lrp_epsilon_plus_flat": Setting("epsilon", "choice", 1e-6, (1e-6, 1e-3, 1e-2, 0.1, 1.0)),
    **{m: _LAYER for m in ("gradcam", "gradcam_pp", "scorecam", "ablationcam", "xgradcam", "layercam", "cam",
                           "grad_cam")},
    "fullgrad": None,  # FullGrad sums over every layer's bias gradients: no layer to pick
    # GFI's iterations include stage 1's ten (gfi.optimise): at least five of stage 2
    "gfi": Setting("iterations", "int", 80, low=15, high=200, step=5),
    "mask": Setting("iterations", "int", 300, low=10, high=500, step=10),
    "srd_input": _SRD_RULE,
    "srd_high": _SRD_RULE,
    "srd_low": _SRD_RULE,
    "causal": Setting("rule", "choice", convad.DEFAULT_RULE, convad.RULES),
    "actmatch": Setting("steps", "int", 50, low=5, high=880, step=5),
}


def methods() -> list[str]:
    """The methods the explorer offers: every name of :func:`xaihelpers.explainers.names` but :data:`LEFT_OUT`."""
    return [n for n in explainers.names() if n not in LEFT_OUT]


def method_label(name: str) -> str:
    """The menu entry of a method: its title, its chapter and, for :data:`SLOW` ones, "slow"."""
    entry = explainers.REGISTRY[name]
    label = entry.title if entry.title == name else f"{entry.title} ({name})"
    slow = ", slow" if name in SLOW else ""
    return f"{label}, ch. {entry.chapter[:2]}{slow}"


def model_label(name: str) -> str:
    """The menu entry of a model: online ones say that their weights are downloaded."""
    return f"{name} (downloads its weights once)" if name in models.ONLINE_MODELS else name


def feature_layers(model: nn.Module, size: int = 224) -> list[str]:
    """Layers whose output is a feature map a CAM can weigh, in the order of the forward pass.

    Every module at most two levels deep (``"layer4"``, ``"_blocks.7"``,
    ``"features.res2"``) whose output has the shape (N, C, h, w) with more than one
    position, except convolutions, batch norms, dropout and padding (their outputs are
    pre-activation values) and containers (``nn.Sequential``: their output is their
    last module's): the blocks, activations and poolings. The model's
    :func:`xaihelpers.models.default_layer` is always among them (last when it is a
    container, as ResNets' ``layer4``).

    Parameters
    ----------
    model : nn.Module
        An image classifier.
    size : int
        Side of the (square) input the layers are found with.

    Returns
    -------
    list of str
        Module names accepted by ``model.get_submodule``.
    """
    candidates = [n for n in hooks.layer_names(model) if n.count(".") <= 1
                  and not isinstance(model.get_submodule(n), _NOT_A_STAGE)]
    dev = next(model.parameters()).device
    with torch.no_grad(), hooks.record(model, candidates) as rec:
        model(torch.zeros(1, 3, size, size, device=dev))
    # the recording holds the layers in the order they ran
    seen = [n for n, a in rec.activations.items()
            if isinstance(a, torch.Tensor) and a.ndim == 4 and a.shape[2] * a.shape[3] > 1]
    default = models.default_layer(model)
    if default not in seen:
        seen.append(default)
    return seen


def read_upload(content: bytes, name: str = "upload") -> Image.Image:
    """An uploaded file's bytes as an RGB PIL image (the explorer's upload button).

    Parameters
    ----------
    content : bytes
        The file's contents (ipywidgets' ``FileUpload`` gives them as a memoryview).
    name : str
        The file's name, for the message.

    Returns
    -------
    PIL.Image.Image
        The picture converted as :func:`xaihelpers.data.to_rgb` converts files.

    Raises
    ------
    ValueError
        When the bytes are not an image PIL can read; the message names the file.
    """
    raw = bytes(content)
    if not raw:
        raise ValueError(f"{name!r} is empty: expected an image file (PNG, JPEG, TIFF, ...)")
    try:
        with Image.open(io.BytesIO(raw)) as img:
            img.load()
            return data.to_rgb(img)
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"{name!r} ({len(raw)} bytes) is not an image PIL can read: expected a PNG, JPEG, "
                         f"TIFF, ... file ({type(err).__name__}: {err})") from err


def _fmt(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


class Explorer:
    """Explain one photo with one method of the book, as a reader chooses (chapters 0 and 6).

    Each choice is a method that a widget calls, and that a test or a script may call
    as well: :meth:`select_photo`, :meth:`upload`, :meth:`select_model`,
    :meth:`select_class`, :meth:`select_method`, :meth:`set_setting`. A new photo or
    model recomputes the top-5 classes (one forward pass) and selects the first; nothing
    else is computed before :meth:`press` (the *Explain* button) or :meth:`run`.
    Models are loaded when first chosen and kept.

    Parameters
    ----------
    model : str
        A name of :data:`xaihelpers.models.MODELS` (the online ones download their weights).
    photo : str
        A name of :data:`xaihelpers.data.SAMPLE_NAMES`, or of ``photos``.
    method : str
        A name of :func:`methods`.
    device : torch.device or str, optional
        Where the models run; default :func:`xaihelpers.runtime.device`.
    photos : dict of str to picture, optional
        More pictures to offer (PIL images, arrays or tensors as
        :func:`xaihelpers.data.to_rgb` reads them), e.g. benchmark images.
    fixed : dict of str to dict, optional
        Settings fixed per method besides the main one; default :data:`FIXED`.
    loaded : dict of str to LoadedModel, optional
        Models already loaded, by name (what :func:`xaihelpers.load_model` returned),
        so that a chapter's model is not loaded twice.

    Attributes
    ----------
    message : str
        The last message for the reader (progress, or what went wrong).
    computed : int
        How many times a method has run.
    """

    def __init__(self, model: str = "efficientnet_lite0", photo: str = "coffee", method: str = "gradcam",
                 device: torch.device | str | None = None, photos: dict | None = None,
                 fixed: dict[str, dict] | None = None, loaded: dict[str, models.LoadedModel] | None = None) -> None:
        self.device = pick_device(device if isinstance(device, str) or device is None else str(device))
        self.fixed = {k: dict(v) for k, v in (FIXED if fixed is None else fixed).items()}
        self._pictures: dict[str, Image.Image] = {k: data.to_rgb(v) for k, v in (photos or {}).items()}
        self._photo_names = list(data.SAMPLE_NAMES) + [k for k in self._pictures if k not in data.SAMPLE_NAMES]
        self._models: dict[str, models.LoadedModel] = {k: models.LoadedModel(*v) for k, v in (loaded or {}).items()}
        self._layers: dict[str, list[str]] = {}
        self._top: dict[tuple[str, str], list[tuple[int, str, float]]] = {}
        self._widgets: dict | None = None
        self._syncing = False
        self.message = ""
        self.computed = 0
        self.photo, self.model_name, self.method = photo, model, method
        self.target: int | None = None
        self.setting_value: object = None
        self.result: dict | None = None
        self._check_choice(photo, self._photo_names, "photo")
        self._check_choice(model, list(models.MODELS), "model")
        self._check_choice(method, methods(), "method")
        self.select_model(model)
        self.select_method(method)

    # ------------------------------------------------------------------ the choices
    @property
    def photos(self) -> list[str]:
        """The photos on offer: the sample photos, then the given and uploaded ones."""
        return list(self._photo_names)

    @staticmethod
    def _check_choice(value: str, allowed: list[str], what: str) -> None:
        if value not in allowed:
            raise ValueError(f"expected a {what} from {allowed}, got {value!r}")

    def select_photo(self, name: str) -> list[tuple[int, str, float]]:
        """Choose a photo; returns the new top-5 (and selects its first class)."""
        self._check_choice(name, self._photo_names, "photo")
        self.photo = name
        return self._update_top()

    def upload(self, content: bytes, name: str = "upload") -> str:
        """Add an uploaded file as a photo and choose it; returns the message shown.

        Bytes that are not an image leave the photo as it was and return a message
        saying so (no exception: this is the upload button's callback).
        """
        try:
            picture = read_upload(content, name)
        except ValueError as err:
            return self._say(f"Upload refused: {err}. The photo stays {self.photo!r}.")
        key = f"upload: {name}"
        self._pictures[key] = picture
        if key not in self._photo_names:
            self._photo_names.append(key)
        self.select_photo(key)
        if self.target is not None:
            self._say(f"Read {name!r} ({picture.width} x {picture.height} pixels); press Explain.")
        return self.message

    def select_model(self, name: str) -> list[tuple[int, str, float]]:
        """Choose a model (loaded on first use); returns the new top-5.

        When the model cannot be loaded (an online model without internet) the
        message holds the loading error and no class is offered.
        """
        self._check_choice(name, list(models.MODELS), "model")
        self.model_name = name
        spec = MAIN_SETTINGS.get(self.method)
        # the new model has layers of its own, and a size of its own (occlusion's window)
        reset = spec is not None and (spec.kind == "layer" or spec.default is None)
        if reset:
            self.setting_value = None
        top = self._update_top()
        if reset and name in self._models:
            self.setting_value = self.setting()["value"]
            self._refresh()
        return top

    def select_class(self, index: int) -> None:
        """Choose the explained class (an ImageNet or benchmark class index); computes nothing."""
        self.target = int(index)
        self._refresh()

    def select_method(self, name: str) -> None:
        """Choose a method; its main setting goes back to its default. Computes nothing."""
        self._check_choice(name, methods(), "method")
        self.method = name
        self.setting_value = None
        spec = self.setting()
        self.setting_value = None if spec is None else spec["value"]
        self._refresh()

    def set_setting(self, value: object) -> None:
        """Set the method's main setting (checked against :meth:`setting`); computes nothing."""
        spec = self.setting()
        if spec is None:
            raise ValueError(f"{self.method} has no setting to choose")
        if spec["kind"] == "int":
            value = int(value)
            if not spec["min"] <= value <= spec["max"]:
                raise ValueError(f"expected {spec['name']} from {spec['min']} to {spec['max']}, got {value}")
        elif value not in spec["options"]:
            raise ValueError(f"expected {spec['name']} in {spec['options']}, got {value!r}")
        self.setting_value = value
        self._refresh()

    def setting(self) -> dict | None:
        """The current method's main setting for the current model, or ``None`` when it has none.

        Returns
        -------
        dict or None
            ``name`` (the keyword), ``kind`` (``"layer"``, ``"choice"`` or ``"int"``),
            ``value`` (the current one), and ``options`` (layer, choice) or ``min``,
            ``max``, ``step`` (int). Layers need the model: when it cannot be loaded,
            only the current value is offered.
        """
        spec = MAIN_SETTINGS.get(self.method)
        if spec is None:
            return None
        out = {"name": spec.name, "kind": spec.kind}
        loaded = self._models.get(self.model_name)
        side = loaded.preprocess.size if loaded is not None else 224
        if spec.kind == "layer":
            if loaded is None:
                out["options"] = [self.setting_value] if self.setting_value else []
                out["value"] = self.setting_value
                return out
            if self.model_name not in self._layers:
                self._layers[self.model_name] = feature_layers(loaded.model, side)
            out["options"] = list(self._layers[self.model_name])
            out["value"] = self.setting_value or models.default_layer(loaded.model)
        elif spec.kind == "choice":
            out["options"] = list(spec.options)
            out["value"] = self.setting_value if self.setting_value is not None else spec.default
        else:
            high = spec.high or side // 2
            default = spec.default if spec.default is not None else max(spec.low, side // 8)
            out.update(min=spec.low, max=high, step=spec.step)
            value = self.setting_value if self.setting_value is not None else default
            out["value"] = int(min(max(value, spec.low), high))
        return out

    def settings(self) -> dict:
        """Every setting the method will be called with: the fixed ones and the main one."""
        out = dict(self.fixed.get(self.method, {}))
        spec = self.setting()
        if spec is not None and spec["value"] is not None:
            out[spec["name"]] = spec["value"]
        return out

    # ------------------------------------------------------------------ computing
    def loaded(self, name: str | None = None) -> models.LoadedModel:
        """The model ``name`` (default the chosen one), loaded on first use and kept."""
        name = name or self.model_name
        if name not in self._models:
            self._say(f"Loading {name} ...")
            if self._widgets:  # a download's progress goes to the output area
                with self._widgets["output"]:
                    self._models[name] = models.load_model(name, device=self.device)
            else:
                self._models[name] = models.load_model(name, device=self.device)
        return self._models[name]

    def batch(self) -> torch.Tensor:
        """The chosen photo as the chosen model sees it: shape (1, 3, H, W) on the model's device."""
        if self.photo not in self._pictures:
            self._pictures[self.photo] = data.sample_images([self.photo])[self.photo].image
        m = self.loaded()
        return data.to_batch(self._pictures[self.photo], m.preprocess, device=next(m.model.parameters()).device)

    def top5(self) -> list[tuple[int, str, float]]:
        """The chosen model's top-5 classes for the chosen photo: (index, name, probability), best first."""
        key = (self.photo, self.model_name)
        if key not in self._top:
            m = self.loaded()
            k = min(TOP_K, len(m.classes))
            self._top[key] = models.predict(m.model, self.batch(), m.classes, k=k)[0]
        return self._top[key]

    def _update_top(self) -> list[tuple[int, str, float]]:
        try:
            top = self.top5()
        except Exception as err:  # noqa: BLE001 - the reader sees the loading error, e.g. offline
            self.target = None
            self._say(f"Could not use {self.model_name}: {type(err).__name__}: {err}")
            self._refresh()
            return []
        self.target = top[0][0]
        self._say(f"{self.model_name} on {self.photo}: choose a class, a method and its setting, "
                  "then press Explain.")
        self._refresh()
        return top

    def run(self) -> dict:
        """Explain the chosen photo: the map, the top-5 before and after deleting its top 10 %, the time.

        The map is upsampled to the photo's size as the model sees it (after the
        crop) with :func:`xaihelpers.metrics.resize_maps`; the deleted pixels are the
        map's top 10 % by :func:`xaihelpers.metrics.top_share` (exactly that many,
        ties in a seeded random order), set to 0 after normalisation (the mean pixel),
        as the deletion metric :func:`xaihelpers.model_metrics.deletion_insertion` sets them.

        Returns
        -------
        dict
            ``map`` (float32 array (H, W)), ``deleted`` (bool array (H, W), the removed
            pixels), ``top5_before`` and ``top5_after`` (lists of (index, name,
            probability)), ``p_before`` and ``p_after`` (the explained class's
            probability), ``seconds`` (the method's time), ``photo``, ``model``,
            ``method``, ``target``, ``class_name``, ``settings``, ``figure`` (a
            matplotlib figure) and ``table`` (a pandas DataFrame of both top-5 lists).
        """
        loaded = self.loaded()
        x = self.batch()
        if self.target is None:
            self.top5()
            self.target = self._top[(self.photo, self.model_name)][0][0]
        settings = self.settings()
        fn = explainers.get(self.method, **settings)
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        t0 = time.perf_counter()
        maps = fn(loaded.model, x, self.target)
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        seconds = time.perf_counter() - t0
        self.computed += 1
        heat = metrics.resize_maps(maps.detach().float().cpu(), tuple(x.shape[-2:]))
        deleted = metrics.top_share(heat, DELETE_SHARE)
        x_del = x * (~deleted).to(x.device, x.dtype)[:, None]
        before = self.top5()
        with torch.no_grad():
            probs = loaded.model(torch.cat([x, x_del])).softmax(1).cpu()
        top = probs[1].topk(len(before))
        after = [(i, loaded.classes[i], p) for i, p in zip(top.indices.tolist(), top.values.tolist())]
        result = {
            "photo": self.photo, "model": self.model_name, "method": self.method, "target": self.target,
            "class_name": loaded.classes[self.target], "settings": settings, "seconds": seconds,
            "map": heat[0].numpy(), "deleted": deleted[0].numpy(), "top5_before": before, "top5_after": after,
            # the classes that were the top 5, with their probabilities after the deletion
            "top5_before_deleted": [(i, name, float(probs[1, i])) for i, name, _ in before],
            "p_before": float(probs[0, self.target]), "p_after": float(probs[1, self.target]),
        }
        result["table"] = _table(before, after)
        result["figure"] = _figure(result, loaded.preprocess.denormalize(x)[0], loaded.preprocess.denormalize(x_del)[0])
        self.result = result
        return result

    def press(self) -> dict | None:
        """The *Explain* button: :meth:`run`, shown in the panel's output area.

        Errors (a model that cannot be downloaded, a method that does not apply to
        the model) become the message shown there; they are not raised.

        Returns
        -------
        dict or None
            :meth:`run`'s result, or ``None`` when it failed.
        """
        out = self._widgets["output"] if self._widgets else None
        if out is not None:
            out.clear_output()
        slow = " (slow: from ten seconds to minutes on a CPU)" if self.method in SLOW else ""
        self._say(f"Running {self.method} on {self.photo} with {self.model_name}{slow} ...")
        try:
            result = self.run()
        except Exception as err:  # noqa: BLE001 - the reader sees what went wrong
            self._say(f"{self.method} failed on {self.model_name}: {type(err).__name__}: {err}")
            return None
        self._say(f"{self.method}: {result['seconds']:.2f} s for the map.")
        if out is not None:
            from IPython.display import display

            with out:
                display(_png(result["figure"]), result["table"])
        return result

    # ------------------------------------------------------------------ the widgets
    def _say(self, text: str) -> str:
        self.message = text
        if self._widgets:
            import html

            self._widgets["message"].value = f"<i>{html.escape(text)}</i>"
        return text

    def panel(self):
        """The explorer as ipywidgets: menus, a setting, an upload button, *Explain*, and an output area.

        Returns
        -------
        ipywidgets.VBox
            Display it in Jupyter or Colab. Its widgets are in :attr:`widgets`.
        """
        import ipywidgets as w

        if self._widgets is None:
            wide = w.Layout(width="420px")
            style = {"description_width": "80px"}
            ws = {
                "photo": w.Dropdown(description="photo", layout=wide, style=style),
                "upload": w.FileUpload(accept="image/*", multiple=False, description="upload a photo"),
                "model": w.Dropdown(description="model", layout=wide, style=style,
                                    options=[(model_label(m), m) for m in models.MODELS]),
                "target": w.Dropdown(description="class", layout=wide, style=style),
                "method": w.Dropdown(description="method", layout=wide, style=style,
                                     options=[(method_label(m), m) for m in methods()]),
                "setting_box": w.HBox(),
                "run": w.Button(description="Explain", button_style="primary", icon="play"),
                "message": w.HTML(),
                "output": w.Output(),
            }
            self._widgets = ws
            ws["photo"].observe(lambda ch: self._from_widget(self.select_photo, ch), "value")
            ws["model"].observe(lambda ch: self._from_widget(self.select_model, ch), "value")
            ws["target"].observe(lambda ch: self._from_widget(self.select_class, ch), "value")
            ws["method"].observe(lambda ch: self._from_widget(self.select_method, ch), "value")
            ws["upload"].observe(self._on_upload, "value")
            ws["run"].on_click(lambda _button: self.press())
            self._refresh()
            self._say(self.message)
        ws = self._widgets
        return w.VBox([w.HBox([ws["photo"], ws["upload"]]), ws["model"], ws["target"], ws["method"],
                       ws["setting_box"], w.HBox([ws["run"], ws["message"]]), ws["output"]])

    @property
    def widgets(self) -> dict:
        """The panel's widgets by role: photo, upload, model, target, method, setting, run, message, output."""
        if self._widgets is None:
            self.panel()
        return {**self._widgets, "setting": self._widgets["setting_box"].children[0]}

    def _from_widget(self, callback: Callable, change: dict) -> None:
        if not self._syncing and change["new"] is not None:
            callback(change["new"])

    def _on_upload(self, change: dict) -> None:
        files = change["new"]
        if self._syncing or not files:
            return
        files = files.values() if isinstance(files, dict) else files  # ipywidgets 7 gave a dict
        for f in files:
            self.upload(f["content"], f.get("name", "upload"))
        self._syncing = True
        try:
            self._widgets["upload"].value = ()  # the same file can be chosen again
        finally:
            self._syncing = False

    def _refresh(self) -> None:
        """Bring the widgets in line with the choices (no callbacks fire meanwhile)."""
        if not self._widgets:
            return
        import ipywidgets as w

        ws = self._widgets
        self._syncing = True
        try:
            ws["photo"].options = self._photo_names
            ws["photo"].value = self.photo
            ws["model"].value = self.model_name
            top = self._top.get((self.photo, self.model_name), [])
            ws["target"].options = [(f"{name} ({p:.1%})", i) for i, name, p in top]
            ws["target"].value = self.target if top else None
            ws["method"].value = self.method
            spec = self.setting()
            # a new widget when the setting changes its kind, name, range or options; else only its value
            shape = None if spec is None else tuple((k, tuple(v) if isinstance(v, list) else v)
                                                    for k, v in spec.items() if k != "value")
            old = ws["setting_box"].children[0] if ws["setting_box"].children else None
            if old is None or getattr(old, "_explorer_shape", "none") != shape:
                if spec is None:
                    new = w.Label(f"{self.method} has no setting to choose")
                elif spec["kind"] == "int":
                    new = w.IntSlider(description=spec["name"], min=spec["min"], max=spec["max"],
                                      step=spec["step"], value=spec["value"], continuous_update=False)
                else:
                    new = w.Dropdown(description=spec["name"], options=[(_fmt(o), o) for o in spec["options"]])
                new._explorer_shape = shape
                if spec is not None:
                    new.observe(lambda ch: self._from_widget(self.set_setting, ch), "value")
                ws["setting_box"].children = (new,)
            if spec is not None:
                widget = ws["setting_box"].children[0]
                widget.value = spec["value"] if spec["kind"] == "int" or spec["value"] in spec["options"] else None
        finally:
            self._syncing = False

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.panel())


def _table(before: list, after: list) -> "pandas.DataFrame":  # noqa: F821
    import pandas as pd

    cell = lambda row: f"{row[1]} ({row[2]:.1%})"  # noqa: E731
    return pd.DataFrame({"top-5": [cell(r) for r in before],
                         f"after deleting the top {DELETE_SHARE:.0%}": [cell(r) for r in after]},
                        index=pd.RangeIndex(1, len(before) + 1, name="rank"))


def _figure(result: dict, image: np.ndarray, image_deleted: np.ndarray):
    """Three panels: the map over the photo, the photo without the map's top 10 %, the top-5 before and after."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12.5, 3.6), layout="constrained")
    ax_map, ax_del, ax_bar = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 0.8, 1.1]})
    heat = result["map"]
    viz.overlay(ax_map, image, heat, title=f"the map for '{result['class_name'][:22]}'\n(signed: red for, blue against)"
                if heat.min() < 0 else f"the map for '{result['class_name'][:22]}'", symmetric=bool(heat.min() < 0))
    viz.show_image(ax_del, image_deleted, title=f"top {DELETE_SHARE:.0%} of the map deleted\np('{result['class_name'][:22]}'): "
                                                 f"{result['p_before']:.1%} \u2192 {result['p_after']:.1%}")
    before = result["top5_before"]
    p_after = [p for _, _, p in result["top5_before_deleted"]]
    names = [n[:22] for _, n, _ in before]
    y = np.arange(len(before))
    ax_bar.barh(y - 0.2, [p for _, _, p in before], height=0.4, color="#0072B2", label="before")
    ax_bar.barh(y + 0.2, p_after, height=0.4, color="#E69F00", label=f"top {DELETE_SHARE:.0%} deleted")
    ax_bar.set_yticks(y, names)
    for label, (i, _, _) in zip(ax_bar.get_yticklabels(), before):
        if i == result["target"]:
            label.set_fontweight("bold")  # the explained class
    ax_bar.invert_yaxis()
    ax_bar.set_xlim(0, 1)
    ax_bar.set_xlabel("probability")
    first = result["top5_after"][0]
    ax_bar.set_title(f"top-5 (the explained class in bold)\nafter the deletion the top class is '{first[1][:22]}' "
                     f"({first[2]:.0%})", fontsize=9)
    ax_bar.legend(fontsize=8, loc="lower right")
    shown = ", ".join(f"{k}={_fmt(v)}" for k, v in result["settings"].items()) or "defaults"
    fig.suptitle(f"{explainers.REGISTRY[result['method']].title} ({shown}) on '{result['photo']}' with "
                 f"{result['model']}: {result['seconds']:.2f} s", fontsize=10)
    return fig


def _png(fig):
    """The figure as a PNG for IPython's display (shown the same with any matplotlib backend)."""
    from IPython.display import Image as PNG

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return PNG(data=buf.getvalue())
