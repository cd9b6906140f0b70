r"""Causal explanations by responsibility (the ReX algorithm), with any kind of occlusion.

Chapter 4 (``notebooks/04_activation_deactivation.ipynb``) explains the algorithm step
by step. ReX (Chockler, Kelly et al.) asks which parts of an image are *causes* of the
label. It never looks inside the model: it only queries *mutants*, copies of the image
with some parts occluded. How a part is occluded is the question of chapter 4: by
painting a masking value, or by switching activations off (ConvAD). Every query here
goes through one function ``predict(masks) -> logits``, so both kinds of occlusion are
used on the same footing.

**Responsibility.** One iteration draws a random partition tree: a box (first the whole
image) is cut at a random row and a random column into four children. Keeping some
other boxes visible (the *static* part), the 14 mutants that show a non-empty proper
subset of the four children are queried. A mutant that keeps the label shows that the
visible children suffice (with the static part); each of its :math:`k` visible children
gets responsibility :math:`1/k` (a part that must be joined by :math:`k-1` others to
be a cause has degree of responsibility :math:`1/k`), added over its pixels. The
smallest passing mutant's visible children become the next job, and the search
refines them, down to ``max_depth`` levels or boxes smaller than ``min_box`` pixels a
side. Iterations are combined multiplicatively (each map plus one, renormalised to a
maximum of 1), ReX's default, or added.

**Extraction.** Pixels are ranked by responsibility; the explanation is the smallest
top fraction (on a grid of ``step``) that, shown alone, keeps the label: a minimal
*sufficient* subset of the image under the same kind of occlusion.

What differs from the ``rex-xai`` package (version 0.4.1, its defaults), and why. The
search follows its defaults where nothing below says otherwise: 20 iterations,
uniform split points, a tree depth of 10, a queue of one mutant chosen by area,
responsibility :math:`1/k` for the target's passing mutants, multiplicative combination,
and a global extraction.

- **Minimum box size.** ``rex-xai`` stops splitting a box whose *area* is below 10
  pixels (``min_box_size=10``) and may cut anywhere inside it, so children can be one
  pixel thin; here a box is cut only so that every child keeps at least ``min_box``
  pixels *per side* (``max(2, H // 32)``: 2 px at 64 px, 7 px at 224 px).
- **Which passing mutant is refined (queue area).** Both keep one mutant, the
  smallest. ``rex-xai`` measures a mutant by all it leaves visible (the static boxes
  included) and, when the job holds several boxes, refines the smallest passing
  mutant of the *last* box it split; here the passing mutants of all boxes of the
  round are pooled and the one with the smallest visible *children* area is taken.
- **Batches.** All mutants of a round go to the model in one batch (``rex-xai``: one
  batch of 14 per box).
- **Extraction** grows the explanation in steps of a fraction of the image (``step``;
  ``rex-xai`` steps by ``chunk_size`` = 10 pixels, thousands of queries at 224 px).
- **The query** takes masks rather than painted images, which is what lets ConvAD
  answer it (``rex-xai``'s prediction function receives painted tensors only).

``benchmarks/rex_crosscheck.py`` compares the two on the masking-value path; its
recorded result is read by :func:`rex_crosscheck_record` (chapter 4 shows it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from . import _checks, metrics
from .convad import DEFAULT_RULE

#: the 14 non-empty proper subsets of four children
SUBSETS = tuple(c for k in (1, 2, 3) for c in combinations(range(4), k))
STYLES = ("multiplicative", "additive")

Box = tuple  # (row_start, row_stop, col_start, col_stop)
Predict = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class CausalExplanation:
    """What :func:`search` returns for one image.

    Attributes: ``responsibility`` (H, W) in [0, 1]; ``mask`` (H, W) bool, the minimal
    sufficient explanation; ``target``; ``size`` (fraction of the image in the mask);
    ``confidence`` (target probability of the explanation under the same occlusion);
    ``queries`` (forward passes used) and ``seconds``.
    """

    responsibility: np.ndarray
    mask: np.ndarray
    target: int
    size: float
    confidence: float
    queries: int
    seconds: float = 0.0
    trace: list = field(default_factory=list, repr=False)


def split(box: Box, rng: np.random.Generator, min_box: int) -> list[Box] | None:
    """Cut ``box`` at a uniformly drawn row and column into four children (None if too small)."""
    r0, r1, c0, c1 = box
    if r1 - r0 < 2 * min_box or c1 - c0 < 2 * min_box:
        return None
    r = int(rng.integers(r0 + min_box, r1 - min_box + 1))
    c = int(rng.integers(c0 + min_box, c1 - min_box + 1))
    return [(r0, r, c0, c), (r0, r, c, c1), (r, r1, c0, c), (r, r1, c, c1)]


def boxes_mask(boxes, shape: tuple[int, int]) -> torch.Tensor:
    """A (H, W) float mask that is 1 on the given boxes."""
    m = torch.zeros(shape)
    for r0, r1, c0, c1 in boxes:
        m[r0:r1, c0:c1] = 1.0
    return m


def _area(boxes) -> int:
    return sum((r1 - r0) * (c1 - c0) for r0, r1, c0, c1 in boxes)


def _iteration(predict: Predict, shape, target: int, rng, min_box: int, max_depth: int, trace: list | None):
    """One random partition tree: returns (additive responsibility map, queries)."""
    local = np.zeros(shape, dtype=np.float64)
    job, queries = [(0, shape[0], 0, shape[1])], 0
    for depth in range(1, max_depth + 1):
        mutants, children_of = [], []
        for i, active in enumerate(job):
            children = split(active, rng, min_box)
            if children is None:
                continue
            static = job[:i] + job[i + 1:]
            for subset in SUBSETS:
                mutants.append((static, [children[j] for j in subset]))
            children_of.append(children)
        if not mutants:
            break
        masks = torch.stack([boxes_mask(s + v, shape) for s, v in mutants])
        with torch.no_grad():
            pred = predict(masks).argmax(1).cpu().numpy()
        queries += len(mutants)
        passing = [m for m, p in zip(mutants, pred) if p == target]
        if trace is not None:
            trace.append({"depth": depth, "mutants": mutants, "passing": pred == target})
        for _, visible in passing:
            for r0, r1, c0, c1 in visible:
                local[r0:r1, c0:c1] += 1.0 / len(visible)
        if not passing:
            break
        job = min(passing, key=lambda m: _area(m[1]))[1]  # ReX's queue of one, smallest area first
    return local, queries


def responsibility(predict: Predict, shape: tuple[int, int], target: int, iters: int = 20, min_box: int | None = None,
                   max_depth: int = 10, style: str = "multiplicative", seed: int = 0, verbose: bool = True,
                   trace: list | None = None) -> tuple[np.ndarray, int]:
    """Causal responsibility map of ``target`` by ``iters`` random partition trees.

    Parameters
    ----------
    predict : callable
        ``predict(masks)`` with masks (M, H, W), 1 = visible, returns logits (M, K).
    shape : (int, int)
        Image height and width.
    target : int
        The class explained.
    iters : int
        Random partition trees (ReX: 20).
    min_box : int, optional
        Smallest side of a box, in pixels; default ``max(2, H // 32)``.
    max_depth : int
        Levels of refinement per tree (ReX: 10).
    style : {"multiplicative", "additive"}
        How iterations combine (ReX's default is multiplicative).
    seed : int
        Seed of the split points.
    verbose : bool
        Progress bar over iterations.
    trace : list, optional
        If given, receives every round's mutants and which of them passed.

    Returns
    -------
    (numpy.ndarray, int)
        The map (H, W), maximum 1 (all zeros if no mutant ever kept the label),
        and the number of queries.
    """
    if style not in STYLES:
        raise ValueError(f"expected style in {STYLES}, got {style!r}")
    if iters < 1:
        raise ValueError(f"expected iters >= 1, got {iters}")
    min_box = max(2, shape[0] // 32) if min_box is None else int(min_box)
    rng = np.random.default_rng(seed)
    total = np.ones(shape) if style == "multiplicative" else np.zeros(shape)
    queries = 0
    for _ in tqdm(range(iters), desc="responsibility", disable=not verbose, leave=False):
        local, q = _iteration(predict, shape, int(target), rng, min_box, max_depth, trace)
        queries += q
        if style == "multiplicative":
            total = total * (1.0 + local)
            total /= total.max()
        else:
            total += local
    if style == "multiplicative":
        total = total - total.min()  # the untouched floor is 0, as in the additive map
    peak = total.max()
    return (total / peak if peak > 0 else total).astype(np.float32), queries


def extract(predict: Predict, resp: np.ndarray, target: int, step: float = 0.005, batch_size: int = 32,
            min_confidence: float = 0.0, reference: float = 1.0, seed: int = 0) -> tuple[np.ndarray, float, int]:
    """Smallest top fraction of the responsibility ranking that keeps the label.

    Pixels are ranked exactly by :func:`xaihelpers.metrics.rank_pixels`; the few
    distinct values of a responsibility map leave large ties, taken in a seeded random
    order.

    Parameters
    ----------
    predict : callable
        As in :func:`responsibility`.
    resp : numpy.ndarray
        Responsibility map (H, W).
    target : int
        The class explained.
    step : float
        Growth of the explanation per query, as a fraction of the image.
    batch_size : int
        Candidate explanations per query batch (the search stops at the first batch
        holding a sufficient one).
    min_confidence : float
        Also require ``p_target >= min_confidence * reference`` (ReX's minimum
        confidence threshold; 0 = label only).
    reference : float
        The target probability on the whole image.
    seed : int
        Seed of the tie-breaking.

    Returns
    -------
    (numpy.ndarray, float, int)
        Boolean mask (H, W), target probability of the explanation, queries.
    """
    h, w = resp.shape
    order = metrics.rank_pixels(np.asarray(resp)[None], seed)[0]
    counts = np.unique(np.clip(np.round(np.arange(step, 1 + step / 2, step) * h * w), 1, h * w).astype(int))
    queries = 0
    for start in range(0, len(counts), batch_size):
        part = counts[start:start + batch_size]
        masks = torch.zeros(len(part), h * w)
        for i, n in enumerate(part):
            masks[i, order[:n]] = 1.0
        with torch.no_grad():
            prob = predict(masks.view(-1, h, w)).softmax(1).cpu()
        queries += len(part)
        ok = (prob.argmax(1) == target) & (prob[:, target] >= min_confidence * reference)
        if ok.any():
            i = int(ok.nonzero()[0, 0])
            return masks[i].view(h, w).bool().numpy(), float(prob[i, target]), queries
    return np.ones((h, w), dtype=bool), float(prob[-1, target]), queries


def masked_predictor(model: nn.Module, x: torch.Tensor, how: str = "convad", rule: str = DEFAULT_RULE,
                     batch_size: int = 64) -> Predict:
    """The query ``masks -> logits`` for one image (1, 3, H, W), by ConvAD or a masking value."""
    from .convad import predict_masked

    return lambda masks: predict_masked(model, x, masks, how=how, rule=rule, batch_size=batch_size)


def explain(model: nn.Module, x: torch.Tensor, target=None, **settings) -> torch.Tensor:
    """Causal responsibility maps (N, H, W), float32 on ``x``'s device: :func:`search`'s ``responsibility``.

    ``settings`` are :func:`search`'s (``how``, ``rule``, ``iters``, ...); the extracted
    explanations, their sizes and query counts come from :func:`search` itself.
    """
    out = search(model, x, target, **settings)
    return torch.from_numpy(np.stack([e.responsibility for e in out])).float().to(x.device)


def search(model: nn.Module, x: torch.Tensor, target=None, how: str = "convad", rule: str = DEFAULT_RULE,
           iters: int = 20, min_box: int | None = None, max_depth: int = 10, style: str = "multiplicative",
           step: float = 0.005, seed: int = 0, batch_size: int = 64, verbose: bool = True) -> list[CausalExplanation]:
    """Causal explanations of a batch of images, one occlusion method for every query.

    Parameters
    ----------
    model : nn.Module
        Classifier in eval mode returning logits.
    x : torch.Tensor
        Normalised images, shape (N, 3, H, W).
    target : int, sequence or None
        Explained classes; ``None`` takes the predicted ones.
    how : str
        ``"convad"`` (activations switched off, :mod:`xaihelpers.convad`) or a masking
        value of :data:`xaihelpers.occlusion.MASKING` painted over the occluded pixels.
    rule : str
        ConvAD's occlusion rule.
    iters, min_box, max_depth, style, seed
        See :func:`responsibility`.
    step : float
        See :func:`extract`.
    batch_size : int
        Mutants per forward pass.
    verbose : bool
        Progress bar over images.

    Returns
    -------
    list of CausalExplanation
        One per image; ``[e.responsibility for e in out]`` are the maps (N, H, W).
    """
    import time

    _checks.image_batch(x)
    dev = _checks.model_device(model)
    with torch.no_grad():
        probs = model(x.to(dev)).softmax(1).cpu()
    targets = probs.argmax(1) if target is None else torch.as_tensor(target).reshape(-1).expand(len(x))
    out = []
    for i in tqdm(range(len(x)), desc=f"causal ({how})", disable=not verbose):
        t0 = time.perf_counter()
        t = int(targets[i])
        predict = masked_predictor(model, x[i:i + 1], how, rule, batch_size)
        resp, q1 = responsibility(predict, tuple(x.shape[-2:]), t, iters, min_box, max_depth, style,
                                  seed + i, verbose=False)
        mask, conf, q2 = extract(predict, resp, t, step, batch_size)
        out.append(CausalExplanation(resp, mask, t, float(mask.mean()), conf, q1 + q2, time.perf_counter() - t0))
    return out


def method_name(how: str, rule: str = DEFAULT_RULE) -> str:
    """``"ConvAD (lenient)"`` or the masking value's name."""
    return f"ConvAD ({rule})" if how == "convad" else how


def rex_crosscheck_record() -> tuple["pandas.DataFrame", "pandas.DataFrame", str]:  # noqa: F821
    """The recorded result of ``benchmarks/rex_crosscheck.py`` (``xaihelpers/rex_crosscheck.txt``).

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame, str)
        Per image: Spearman agreement of the responsibility maps (ours with
        ``rex-xai``, each with itself under another seed), top-10 % IoU and explanation
        sizes; the summary (mean and standard error per column); the run's header
        lines (command, versions, date).
    """
    import re
    from importlib.resources import files

    import pandas as pd

    text = files("xaihelpers").joinpath("rex_crosscheck.txt").read_text(encoding="utf-8")
    header = "\n".join(line[2:] for line in text.splitlines() if line.startswith("# "))
    rows, summary = {}, {}
    for line in text.splitlines():
        m = re.match(r"image (\d+): (.*)", line)
        if m:
            rows[int(m.group(1))] = {k.strip(): float(v) for k, v in
                                     (re.match(r"(.*\D) (-?[\d.]+)$", part.strip()).groups() for part in m.group(2).split(","))}
            continue
        m = re.match(r"(.+?)\s+(-?[\d.]+) \+- ([\d.]+)$", line)
        if m:
            summary[m.group(1).strip()] = {"mean": float(m.group(2)), "se": float(m.group(3))}
    return pd.DataFrame(rows).T.rename_axis("image"), pd.DataFrame(summary).T, header
