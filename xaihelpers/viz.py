"""Figures: images, heat-map overlays with colour bars, grids of maps, and the figures of single chapters.

Method modules do not plot: chapter 3's attack figures, chapter 5's circuit and chapter
6's question panels are here too, and :func:`show_code` prints the code of an equation
under it. Used by every chapter; chapter 0 (``notebooks/00_getting_started.ipynb``) introduces them.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image

from .data import to_rgb_array

#: Colour map of every heat map (relevance, saliency, masks as maps): perceptually uniform,
#: readable in grey and by readers with a red-green or blue-yellow colour vision deficiency
#: (matplotlib's ``inferno``; ``jet`` is none of these).
HEAT = "inferno"
#: Colour map of signed maps (positive and negative evidence), centred on 0: ColorBrewer's
#: red-blue, a diverging map safe for colour-blind readers (``bwr`` and red-green maps are not).
SIGNED = "RdBu_r"
#: Colour map of scores and ranks in tables drawn as heat maps (``viridis``).
SCORES = "viridis"


def show_code(*functions, docstring: bool = False) -> None:
    """Print each function's code under its name: how a chapter shows the code of an equation next to it.

    Without ``docstring`` the body is printed from the end of the docstring on (the
    equation itself is in the text above the cell).
    """
    import inspect

    for fn in functions:
        src = inspect.getsource(fn)
        if not docstring and '"""' in src:
            head = src[:src.index('"""')].rstrip()
            head = head[:-1].rstrip() if head.endswith("r") else head  # a raw docstring's prefix
            src = head + "\n" + src.split('"""', 2)[-1].strip("\n")
        print(f"# {fn.__module__}.{fn.__name__}\n{src.rstrip()}\n")


def to_image(img: Image.Image | np.ndarray | torch.Tensor) -> np.ndarray:
    """Turn one picture into an (H, W, 3) float array in [0, 1] for drawing.

    Parameters
    ----------
    img : PIL.Image.Image, numpy.ndarray or torch.Tensor
        Any PIL mode a PNG, JPEG or TIFF file opens in, or an array or tensor of shape
        (H, W), (H, W, C) or (C, H, W) with C from 1 to 4: uint8 (divided by 255),
        uint16 (divided by 65535), bool, or float in [0, 1] or 0..255. Tensors are
        channel-first when their first axis has 1 or 3 entries; arrays are
        channel-last unless their first axis has 1 or 3 entries and their last does
        not. The full rules are :func:`xaihelpers.data.to_rgb_array`'s.

    Returns
    -------
    numpy.ndarray
        Shape (H, W, 3), values in [0, 1].
    """
    return to_rgb_array(img)


def to_map(m: np.ndarray | torch.Tensor | Sequence | Image.Image) -> np.ndarray:
    """Turn one map into an (H, W) float array, its values as they are.

    Parameters
    ----------
    m : numpy.ndarray, torch.Tensor, nested sequence or PIL.Image.Image
        Shape (H, W), or (1, H, W) / (H, W, 1) (a batch or channel of one); any real
        or bool dtype. A PIL image must have one value per pixel (modes ``"1"``,
        ``"L"``, ``"I;16"``, ``"I"``, ``"F"``, ...); its pixel values are the map's.

    Returns
    -------
    numpy.ndarray
        float32, shape (H, W).
    """
    if isinstance(m, Image.Image):
        if len(m.getbands()) != 1 or m.mode == "P":
            raise ValueError(f"expected a map with one value per pixel (PIL modes '1', 'L', 'I;16', 'I' or 'F'), "
                             f"got an image of mode {m.mode!r}; convert it with .convert('L') if its gray level "
                             "is the map")
        arr = np.asarray(m).astype(np.float32)
    elif isinstance(m, torch.Tensor):
        arr = m.detach().float().cpu().numpy()
    elif isinstance(m, (str, bytes, dict)) or m is None:
        shown = f" {m[:60]!r}" if isinstance(m, (str, bytes)) else ""
        raise TypeError(f"expected a map as an (H, W) array or tensor, got {type(m).__name__}{shown}")
    else:
        arr = np.asarray(m)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"expected a map of numbers, got dtype {arr.dtype}")
        arr = arr.astype(np.float32)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    elif arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        hint = "; pick one map of the batch, e.g. maps[0]" if arr.ndim == 3 else ""
        raise ValueError(f"expected a single map of shape (H, W), got {arr.shape}{hint}")
    return arr


def show_image(ax: plt.Axes, img, title: str | None = None) -> plt.Axes:
    """Draw an image without axes ticks.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    img : PIL image, array or tensor
        See :func:`to_image`.
    title : str, optional
        Axes title.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax``.
    """
    ax.imshow(to_image(img))
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def overlay(
    ax: plt.Axes,
    img,
    heat,
    title: str | None = None,
    cmap: str | None = None,
    alpha: float = 0.5,
    colorbar: bool = True,
    symmetric: bool = False,
):
    """Draw a heat map over an image, with a colour bar.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    img : PIL image, array or tensor, or None
        Background picture (see :func:`to_image`); ``None`` draws the map alone.
    heat : array or tensor of shape (h, w)
        The map (see :func:`to_map`); resized by matplotlib to the image's extent.
    title : str, optional
        Axes title.
    cmap : str or None
        Colour map; ``None`` takes :data:`HEAT`, or :data:`SIGNED` when ``symmetric``.
    alpha : float
        Opacity of the map over the image, in [0, 1].
    colorbar : bool
        Add a colour bar next to the axes.
    symmetric : bool
        Centre the colour scale on 0 (for signed maps).

    Returns
    -------
    matplotlib.image.AxesImage
        The drawn map, e.g. for a shared colour bar.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"expected alpha in [0, 1], got {alpha}")
    h = to_map(heat)
    extent = None
    if img is not None:
        base = to_image(img)
        ax.imshow(base)
        extent = (-0.5, base.shape[1] - 0.5, base.shape[0] - 0.5, -0.5)
    vmin, vmax = float(np.nanmin(h)), float(np.nanmax(h))
    if symmetric:
        lim = max(abs(vmin), abs(vmax)) or 1.0
        vmin, vmax = -lim, lim
    if cmap is None:
        cmap = SIGNED if symmetric else HEAT
    im = ax.imshow(h, cmap=cmap, alpha=alpha if img is not None else 1.0, extent=extent,
                   vmin=vmin, vmax=vmax, interpolation="bilinear")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    return im


def grid(
    images: Sequence,
    maps: Mapping[str, object],
    row_titles: Sequence[str] | None = None,
    cmap: str | None = None,
    alpha: float = 0.5,
    size: float = 2.4,
    title: str | None = None,
) -> plt.Figure:
    """A grid of explanations: one row per image, the image then one column per method.

    Parameters
    ----------
    images : sequence of N pictures
        See :func:`to_image`.
    maps : mapping of str to (N, H, W) arrays or tensors
        Method name to its maps, in column order.
    row_titles : sequence of str, optional
        One label per image, shown over the first column.
    cmap, alpha : str, float
        As in :func:`overlay`.
    size : float
        Side of one panel in inches.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        The figure; each map is normalised per panel, with its own colour bar.
    """
    n = len(images)
    for name, m in maps.items():
        if len(m) != n:
            raise ValueError(f"expected {n} maps for method {name!r} (one per image), got {len(m)}")
    cols = 1 + len(maps)
    fig, axes = plt.subplots(n, cols, figsize=(size * cols * 1.1, size * n), squeeze=False)
    for i, img in enumerate(images):
        show_image(axes[i, 0], img, row_titles[i] if row_titles else None)
        for j, (name, m) in enumerate(maps.items(), start=1):
            overlay(axes[i, j], img, m[i], title=name if i == 0 else None, cmap=cmap, alpha=alpha)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def feature_maps(
    activations: Mapping[str, object],
    channels: int = 6,
    index: int = 0,
    size: float = 1.6,
    title: str | None = None,
) -> plt.Figure:
    """Show the strongest channels of recorded activations, one row per layer.

    Parameters
    ----------
    activations : mapping of str to (N, C, h, w) tensors
        E.g. ``Recording.activations`` from :func:`xaihelpers.hooks.record`.
    channels : int
        How many channels per layer, those with the largest mean activation.
    index : int
        Which image of the batch.
    size : float
        Side of one panel in inches.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        Rows are layers (labelled with name and shape), columns the chosen channels,
        each with its own colour bar.
    """
    if channels < 1:
        raise ValueError(f"expected channels >= 1, got {channels}")
    rows = len(activations)
    fig, axes = plt.subplots(rows, channels, figsize=(size * channels * 1.25, size * rows), squeeze=False)
    for r, (name, act) in enumerate(activations.items()):
        a = act.detach().float().cpu() if isinstance(act, torch.Tensor) else torch.as_tensor(act)
        if a.ndim != 4:
            raise ValueError(f"expected (N, C, h, w) activations for {name!r}, got {tuple(a.shape)}")
        a = a[index]
        top = a.mean(dim=(1, 2)).argsort(descending=True)[:channels]
        for c in range(channels):
            ax = axes[r, c]
            if c < len(top):
                ch = int(top[c])
                im = ax.imshow(a[ch].numpy(), cmap=HEAT)
                fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
                ax.set_title(f"ch {ch}", fontsize=8)
            ax.set_axis_off()
        axes[r, 0].text(-0.15, 0.5, f"{name}\n{tuple(a.shape)}", transform=axes[r, 0].transAxes,
                        ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def benchmark_examples(dataset, n: int = 8, cols: int = 8, size: float = 1.8) -> plt.Figure:
    """Images of a localisation benchmark with their object outline and box.

    Parameters
    ----------
    dataset : xaihelpers.benchmark.ClutteredFashionMNIST
        Images (N, 3, H, W) in [0, 1] with masks, boxes, labels and class names.
    n : int
        How many images, from the first.
    cols : int
        Panels per row.
    size : float
        Side of one panel in inches.

    Returns
    -------
    matplotlib.figure.Figure
        The mask's outline in white, the box in yellow, the label as title.
    """
    from matplotlib.patches import Rectangle

    n = min(n, len(dataset))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows * 1.1), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for i, ax in enumerate(axes.flat[:n]):
        show_image(ax, dataset.images[i], dataset.classes[int(dataset.labels[i])])
        ax.contour(dataset.masks[i].numpy().astype(float), levels=[0.5], colors="white", linewidths=0.8)
        x0, y0, x1, y1 = dataset.boxes[i].tolist()
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor="yellow", linewidth=1.2))
    fig.suptitle("cluttered Fashion-MNIST: object outline (white) and box (yellow)")
    fig.tight_layout()
    return fig


def score_table(table, higher_is_better: Mapping[str, bool], title: str | None = None, fmt: str = ".3f") -> plt.Figure:
    """A table of scores as a heat map coloured by rank within each column (green = best).

    Parameters
    ----------
    table : pandas.DataFrame
        Rows are methods, columns are metrics (only those in ``higher_is_better`` are drawn).
    higher_is_better : mapping of str to bool
        For each column to draw, whether a higher value is better.
    title : str, optional
        Figure title.
    fmt : str
        Format of the printed values.

    Returns
    -------
    matplotlib.figure.Figure
        The heat map, one row per method.
    """
    import seaborn as sns

    cols = [c for c in higher_is_better if c in table.columns]
    if not cols:
        raise ValueError(f"none of the columns {list(higher_is_better)} is in the table ({list(table.columns)})")
    values = table[cols].astype(float)
    ranks = values.rank(pct=True)
    for c in cols:
        if not higher_is_better[c]:
            ranks[c] = values[c].rank(pct=True, ascending=False)
    fig, ax = plt.subplots(figsize=(1.3 * len(cols) + 2.5, 0.38 * len(values) + 1.2))
    sns.heatmap(ranks, annot=values, fmt=fmt, cmap=SCORES, vmin=0, vmax=1, cbar_kws={"label": "rank in column (1 = best)"},
                ax=ax, linewidths=0.5)
    ax.set_xticklabels([f"{c} {'↑' if higher_is_better[c] else '↓'}" for c in cols], rotation=30, ha="right")
    ax.set_ylabel("")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def explanation(ax: plt.Axes, img, mask, title: str | None = None, dim: float = 0.15) -> plt.Axes:
    """Show only an explanation's pixels: the rest of the picture is dimmed to ``dim``.

    Chapter 4 draws causal explanations (binary masks) with it.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    img : picture
        See :func:`to_image`.
    mask : array or tensor (H, W)
        1 = part of the explanation; see :func:`to_map`.
    title : str, optional
        Axes title.
    dim : float
        Brightness left to the pixels outside the explanation.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax``.
    """
    pic = to_image(img)
    m = to_map(mask)
    if m.shape != pic.shape[:2]:
        raise ValueError(f"expected a mask of the picture's shape {pic.shape[:2]}, got {m.shape}")
    m = m[..., None]
    return show_image(ax, pic * (m + (1 - m) * dim), title)


# ----------------------------------------------------------------------------
# the figures of single chapters
# ----------------------------------------------------------------------------

def attack_robustness(results: dict, title: str):
    """Chapter 3: box plots of SSIM and PCC between original and manipulated maps (:func:`xaihelpers.attack.manipulate`), one box per method."""
    names = list(results)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for ax, key, label in zip(axes, ("ssim", "pcc"), ("SSIM", "PCC")):
        values = [np.asarray(results[m][key], dtype=float) for m in names]
        ax.boxplot(values, showfliers=False)
        for i, v in enumerate(values, start=1):  # every pair as a dot: few pairs make a box alone misleading
            ax.plot(i + np.linspace(-0.12, 0.12, len(v)), v, "o", color="tab:blue", alpha=0.6, markersize=4)
        ax.set_xticks(range(1, len(names) + 1), [m.replace("_", " ") for m in names], rotation=30, ha="right")
        ax.set_title(label)
        ax.grid(axis="y", alpha=0.4)
    axes[0].set_ylabel("original vs manipulated map\n(higher: harder to fool)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def attack_pair(results: dict, images: torch.Tensor, targets: torch.Tensor, denormalize, title: str, i: int = 0):
    """Chapter 3: image ``i``, its attacked copy and its target image, each next to every method's map; returns the figure.

    ``denormalize`` turns normalised images (N, 3, H, W) into (N, H, W, 3) arrays,
    e.g. :meth:`xaihelpers.models.Preprocess.denormalize`. The attacked copy shown is
    the one made for the last method of ``results``.
    """
    last = list(results)[-1]
    shown = {"original": images[i:i + 1], "manipulated": results[last]["x_adv"][i:i + 1], "target_maps": targets[i:i + 1]}
    names = {"original": "image", "manipulated": f"attacked for {last}", "target_maps": "target image"}
    fig, axes = plt.subplots(3, len(results) + 1, figsize=(1.9 * (len(results) + 1), 6))
    for row, (key, label) in enumerate((("original", "original"), ("manipulated", "manipulated"), ("target_maps", "target"))):
        img = denormalize(shown[key].cpu())[0]
        axes[row, 0].imshow(img.squeeze(-1) if img.shape[-1] == 1 else img, cmap="gray")
        axes[row, 0].set_title(names[key], fontsize=8)
        for j, (m, r) in enumerate(results.items(), start=1):
            axes[row, j].imshow(torch.as_tensor(r[key][i]).cpu().numpy(), cmap=HEAT)
            axes[row, j].set_title(f"{m}\n{label}" if row == 0 else label, fontsize=8)
    for ax in axes.flat:
        ax.set_axis_off()
    fig.suptitle(title)
    return fig


def circuit(ax, circ: dict, title: str | None = None, class_name: str | None = None):
    """Chapter 5: draw :func:`xaihelpers.actmatch.circuit`'s graph in layers, left to right, edge width by weight (networkx)."""
    import networkx as nx

    g = nx.DiGraph()
    pos = {}
    for col, (layer, chans) in enumerate(circ["nodes"].items()):
        for row, (c, _) in enumerate(chans):
            g.add_node((layer, c))
            pos[(layer, c)] = (col, -row)
    cls = [e[1] for e in circ["edges"] if e[1][0] == "class"]
    if cls:
        g.add_node(cls[0])
        pos[cls[0]] = (len(circ["nodes"]), -(len(next(iter(circ["nodes"].values()))) - 1) / 2)
    for s, d, wgt in circ["edges"]:
        g.add_edge(s, d, weight=wgt)
    ws = np.array([d["weight"] for *_, d in g.edges(data=True)]) if g.number_of_edges() else np.ones(1)
    nx.draw_networkx_edges(g, pos, ax=ax, width=0.3 + 4 * ws / ws.max(), alpha=0.6, arrows=False)
    nx.draw_networkx_nodes(g, pos, ax=ax, node_size=260, node_color="#8ecae6")
    labels = {n: (class_name or "class") if n[0] == "class" else str(n[1]) for n in g.nodes}
    nx.draw_networkx_labels(g, pos, labels, ax=ax, font_size=7)
    for col, layer in enumerate(circ["nodes"]):
        ax.text(col, 0.7, layer, ha="center", fontsize=7, rotation=20)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def question(tab: "pandas.DataFrame", question: str, title: str | None = None):  # noqa: F821
    """Chapter 6: one panel per metric of a question of :data:`xaihelpers.compare.QUESTIONS`: mean ± standard error per method.

    The best method of each panel is drawn in a darker colour; the panel title says
    whether higher or lower is better.

    Parameters
    ----------
    tab : pandas.DataFrame
        Output of :func:`xaihelpers.compare.table`.
    question : str
        A key of :data:`xaihelpers.compare.QUESTIONS`.
    title : str, optional
        Figure title (default the question).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from .compare import HIGHER_IS_BETTER, LABELS, QUESTIONS

    if question not in QUESTIONS:
        raise ValueError(f"expected a question of {list(QUESTIONS)}, got {question!r}")
    cols = [c for c in QUESTIONS[question] if c in tab.columns]
    fig, axes = plt.subplots(1, len(cols), figsize=(3.6 * len(cols), 0.35 * len(tab) + 1.4), sharey=True, squeeze=False)
    for ax, c in zip(axes[0], cols):
        vals, err = tab[c].to_numpy(float), tab[f"{c}_sem"].fillna(0).to_numpy(float)
        finite = np.isfinite(vals)
        best = (np.nanargmax if HIGHER_IS_BETTER[c] else np.nanargmin)(np.where(finite, vals, np.nan)) if finite.any() else -1
        colours = ["tab:blue" if i == best else "lightsteelblue" for i in range(len(vals))]
        ax.barh(range(len(vals)), np.nan_to_num(vals), xerr=err, color=colours, capsize=2)
        ax.set_yticks(range(len(vals)), tab.index)
        ax.set_title(f"{LABELS.get(c, c)}\n({'higher' if HIGHER_IS_BETTER[c] else 'lower'} is better)", fontsize=9)
        if c in ("seconds", "per_fwd_bwd"):
            ax.set_xscale("log")
    axes[0, 0].invert_yaxis()  # the table's order from the top (the axes share y: invert once)
    fig.suptitle(title or question)
    fig.tight_layout()
    return fig
