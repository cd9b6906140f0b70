"""Self-checking exercises: the check cells of the chapters (0 to 6).

An exercise that asks for code or a number is followed by a check cell in which the
reader stores an answer and calls :func:`check`::

    answer_ex00_layer = None  # your answer here
    xh.exercises.check("ex00-layer", answer_ex00_layer, model, x, targets)

:func:`check` prints one of three things: that the answer is right; that it is wrong,
with a hint; or, while the answer is still ``None``, what is expected. It returns
``True``, ``False`` or ``None`` accordingly. The reference answer is never typed in:
each checker computes it from the objects the chapter passes (the reader's model, the
images, the classes), so the same check holds for every ``MODEL``, device and
``SMOKE`` setting; :func:`reference` returns it. Each checker states its tolerance
in what it prints when no answer is given (:func:`expected`).

Why not an autograder such as otter-grader or nbgrader? Their checks are written by
``otter assign`` (or nbgrader's release step) from a master notebook with their own
cell markup, into test files or notebook metadata that travel next to the student's
notebook, and typically compare with values fixed when the assignment is generated.
Here the answers depend on the reader's model, device and chapter parameters, the
chapters are the book's pages (sphinx-exercise markup, executed by papermill), and on
Colab the only thing installed is ``xaihelpers``. A checker that is a function of the
chapter's objects runs wherever the chapter runs and is unit-tested like the rest of
the package (``tests/test_exercises.py``). To grade a class, run the submitted
student editions with papermill; ``scripts/student_notebooks.py --report`` then lists
what each check cell printed.

The module also holds the helpers a solution needs twice:
:func:`plain_softplus` (chapter 3, ``ex03-relu6``) and :func:`patch_masks`
(chapter 4, ``ex04-occlusion``).
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CHECKERS", "check", "expected", "reference", "plain_softplus", "patch_masks"]


@dataclass(frozen=True)
class _Checker:
    chapter: str
    expected: str
    reference: Callable[..., Any]
    judge: Callable[..., tuple[bool, str]]


CHECKERS: dict[str, _Checker] = {}


def _register(name: str, chapter: str, expected: str, reference: Callable[..., Any]):
    def wrap(judge):
        CHECKERS[name] = _Checker(chapter, expected, reference, judge)
        return judge
    return wrap


def _judged(name: str, chapter: str, reference: Callable[..., torch.Tensor], *, tol: float, hint: str,
            what: str = "", maps: bool = False, order: str | None = None,
            foils: Callable[..., dict[str, torch.Tensor]] | None = None,
            precheck: Callable[[torch.Tensor, torch.Tensor], str | None] | None = None) -> None:
    """Register a checker that compares the answer with ``reference(*context)``.

    The reference's docstring says what the answer is (formatted with this module's
    constants); the tolerance is added to it. Numbers are right within the absolute
    tolerance ``tol`` (``what`` names them); ``maps=True`` compares a tensor of the
    reference's shape relative to its largest absolute value. Before the general ``hint``,
    a wrong answer is matched against the mistakes a reader makes: the two numbers in the
    reverse of ``order``, and ``foils(ref, *context)`` (hint -> wrong answer), computed only
    for a wrong answer; ``precheck(answer, ref)`` may return a hint before any comparison.
    """
    said = " ".join(inspect.getdoc(reference).split()).format(**globals()).rstrip(".")
    if maps:
        said += (f"; right when its largest difference from the reference is at most {tol:g} of the "
                 "reference's largest absolute value.")
    else:
        said += f"; right when each is within {tol:g} of the reference."

    def judge(answer, *context, **settings):
        ref = reference(*context, **settings)
        if precheck is not None and (early := precheck(_tensor(answer), ref)):
            return False, f"Hint: {early}"

        def alternatives() -> dict[str, torch.Tensor]:
            out = {f"the two numbers are swapped: the order is ({order}).": ref.flip(0)} if order else {}
            return {**out, **(foils(ref, *context, **settings) if foils else {})}

        if maps:
            return _maps_judge(answer, ref, tol, alternatives, hint)
        return _numbers_judge(answer, ref, tol, alternatives, hint, what)

    CHECKERS[name] = _Checker(chapter, said, reference, judge)


def _lookup(name: str) -> _Checker:
    if name not in CHECKERS:
        raise ValueError(f"expected an exercise name in {sorted(CHECKERS)}, got {name!r}")
    return CHECKERS[name]


def expected(name: str) -> str:
    """What exercise ``name`` expects as an answer, with the tolerance of its check."""
    return _lookup(name).expected


def reference(name: str, *context, **settings):
    """The reference answer of exercise ``name``, computed from the chapter's objects.

    Parameters
    ----------
    name : str
        The exercise's label, e.g. ``"ex00-layer"`` (one of :data:`CHECKERS`).
    *context
        The chapter's objects the check cell passes (model, images, classes, ...).
    **settings
        Keyword context, e.g. ``methods=`` for ``ex01-randomise``.

    Returns
    -------
    object
        What a right answer equals, within the tolerance :func:`expected` states.
    """
    return _lookup(name).reference(*context, **settings)


def check(name: str, answer, *context, **settings) -> bool | None:
    """Print whether ``answer`` to exercise ``name`` is right; a hint when it is not.

    Parameters
    ----------
    name : str
        The exercise's label, e.g. ``"ex01-tolerance"``.
    answer : object or None
        The reader's answer; ``None`` prints what is expected.
    *context, **settings
        The chapter's objects the reference answer is computed from, as the
        chapter's check cell passes them.

    Returns
    -------
    bool or None
        ``True`` when right, ``False`` when wrong, ``None`` when there is no answer yet.
    """
    checker = _lookup(name)
    if answer is None:
        print(f"{name}: no answer yet. Expected: {checker.expected}")
        return None
    try:
        ok, message = checker.judge(answer, *context, **settings)
    except (TypeError, ValueError, IndexError, RuntimeError) as err:  # an answer of the wrong kind
        ok, message = False, f"the answer could not be compared ({type(err).__name__}: {err})"
    print(f"{name}: {'right' if ok else 'not right yet'}. {message}")
    return ok


# ----------------------------------------------------------------------------
# comparing answers
# ----------------------------------------------------------------------------

def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _tensor(answer) -> torch.Tensor:
    """The answer as a float CPU tensor (from a tensor, an array, a list or a number)."""
    if isinstance(answer, torch.Tensor):
        return answer.detach().float().cpu()
    if isinstance(answer, dict):
        raise TypeError("expected numbers or a tensor, got a dict")
    return torch.as_tensor(np.asarray(answer, dtype=np.float64)).float()


def _gap(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest absolute difference relative to the largest absolute reference value."""
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-12))


def _maps_judge(answer, ref: torch.Tensor, rtol: float, alternatives, hint: str):
    """Compare maps: shape first, then the largest difference relative to the reference's largest value.

    ``alternatives`` maps hints to wrong answers, or is a function returning that dict (called only
    when the answer is not right, since a foil may cost as much as the reference).
    """
    a = _tensor(answer)
    if a.shape != ref.shape and a.squeeze().shape == ref.squeeze().shape:
        a = a.reshape(ref.shape)
    if a.shape != ref.shape:
        return False, f"expected a tensor of shape {tuple(ref.shape)}, got {tuple(a.shape)}."
    gap = _gap(a, ref)
    if gap <= rtol:
        return True, f"Largest difference from the reference: {gap:.1e} of its largest value (tolerance {rtol:g})."
    for what, alt in _foils(alternatives).items():
        if alt.shape == ref.shape and _gap(a, alt) <= rtol:
            return False, f"Hint: {what}"
    return False, f"Largest difference from the reference: {gap:.2g} of its largest value. Hint: {hint}"


def _foils(alternatives) -> dict[str, torch.Tensor]:
    return alternatives() if callable(alternatives) else alternatives


def _numbers_judge(answer, ref: torch.Tensor, atol: float, alternatives, hint: str, what: str):
    """Compare a few numbers with an absolute tolerance; ``alternatives`` as in :func:`_maps_judge`."""
    a = _tensor(answer).flatten()
    if a.numel() != ref.numel():
        return False, f"expected {ref.numel()} numbers ({what}), got {a.numel()}."
    diff = float((a - ref).abs().max())
    if diff <= atol:
        return True, f"Largest difference from the reference: {diff:.1e} (tolerance {atol:g})."
    for text, alt in _foils(alternatives).items():
        if alt.numel() == ref.numel() and float((a - alt.flatten()).abs().max()) <= atol:
            return False, f"Hint: {text}"
    return False, f"Largest difference from the reference: {diff:.3g} (tolerance {atol:g}). Hint: {hint}"


def _names(answer) -> set[str]:
    if isinstance(answer, str):
        return {answer}
    return {str(a) for a in answer}


def _set_judge(answer, ref: set[str], universe: set[str], hints: dict[str, str], what: str):
    got = _names(answer)
    unknown = got - universe
    if unknown:
        return False, f"expected names among {sorted(universe)}, got unknown {sorted(unknown)}."
    if got == ref:
        return True, f"The {what} are {sorted(ref) or 'none'}."
    missing, extra = sorted(ref - got), sorted(got - ref)
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing")
    if extra:
        parts.append(f"{len(extra)} that should not be there")
    tips = [hints[n] for n in missing + extra if n in hints]
    return False, f"Your list has {' and '.join(parts)}. Hint: " + (" ".join(dict.fromkeys(tips)) if tips else hints["*"])


# ----------------------------------------------------------------------------
# chapter 0: getting started
# ----------------------------------------------------------------------------

def _grad_cam(model: nn.Module, x: torch.Tensor, target, **settings) -> torch.Tensor:
    from .baselines import grad_cam

    return grad_cam(model, x, target, **settings).detach().cpu()


def _top3(model: nn.Module, x1: torch.Tensor) -> list[int]:
    with torch.no_grad():
        return model(x1.to(_device(model))).topk(3, dim=1).indices[0].tolist()


def _ex00_top3_reference(model: nn.Module, x_cat: torch.Tensor) -> torch.Tensor:
    """The Grad-CAM maps of the cat photo for its three most probable classes, most probable first: a
    tensor of shape (3, H, W), computed at the default layer."""
    return _grad_cam(model, x_cat.repeat(3, 1, 1, 1), _top3(model, x_cat))


_judged("ex00-top3", "00_getting_started", _ex00_top3_reference,
        tol=1e-3, maps=True,
        foils=lambda ref, *_: {f"the maps are right but in the order {perm} of the top-3 list; keep its order, "
                               "most probable first.": ref[perm]
                               for perm in ([0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0])},
        hint="explain x[i:i+1].repeat(3, 1, 1, 1), the cat photo three times, for the classes "
             "[c for c, _, _ in top5[i]][:3] with xh.baselines.grad_cam.")


def _ex00_layer_reference(model: nn.Module, x: torch.Tensor, targets, default: bool = False) -> torch.Tensor:
    """Grad-CAM maps of every photo in x for its top-1 class at the middle layer
    xh.models.default_layer(model, "middle"), a tensor of shape (N, H, W)."""
    from .models import default_layer

    return _grad_cam(model, x, targets, **({} if default else {"layer": default_layer(model, "middle")}))


def _ex00_relu_reference(model: nn.Module, x_coffee: torch.Tensor, classes, default: bool = False) -> torch.Tensor:
    """The signed Grad-CAM map (relu=False) of the coffee photo for the class 'espresso', a tensor of shape
    (H, W)."""
    return _grad_cam(model, x_coffee, list(classes).index("espresso"), relu=default)[0]


# Two Grad-CAM maps with one setting away from its default: the map at the default is the foil.
_judged("ex00-layer", "00_getting_started", _ex00_layer_reference, tol=1e-3, maps=True,
        foils=lambda ref, *context: {"these are the maps of the default (last) layer: pass "
                                     "layer=xh.models.default_layer(model, \"middle\").": _ex00_layer_reference(*context, default=True)},
        hint="call xh.baselines.grad_cam(model, x, targets, layer=xh.models.default_layer(model, \"middle\")).")
_judged("ex00-relu", "00_getting_started", _ex00_relu_reference, tol=1e-3, maps=True,
        foils=lambda ref, *context: {"this map has no negative values: it is the map after the ReLU; pass relu=False.":
                                     _ex00_relu_reference(*context, default=True)},
        hint="explain the class classes.index('espresso') for the coffee photo alone, with relu=False.")


def _ex00_hooks_reference(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The mean over space of the last feature map (layer xh.models.default_layer(model)) for every
    photo in x, a tensor of shape (N, C)."""
    from .hooks import record
    from .models import default_layer

    layer = default_layer(model)
    with torch.no_grad(), record(model, [layer]) as rec:
        model(x.to(_device(model)))
    return rec.activations[layer].mean(dim=(2, 3)).cpu()


_judged("ex00-hooks", "00_getting_started", _ex00_hooks_reference,
        tol=1e-4, maps=True,
        precheck=lambda a, ref: ("these are the whole feature maps (N, C, h, w); average them over the two spatial "
                                 "dimensions." if a.ndim == 4 and a.shape[:2] == ref.shape and a.shape[2:] != (1, 1)
                                 else None),
        hint="record layer xh.models.default_layer(model) during model(x) and take .mean(dim=(2, 3)).")


# ----------------------------------------------------------------------------
# chapter 1: evaluating explanations
# ----------------------------------------------------------------------------

TOLERANCES = (0, 2, 4, 8)


def _pointing_rates(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    from .metrics import pointing_game

    return torch.tensor([float(np.nanmean(pointing_game(maps, masks, tolerance=t))) for t in TOLERANCES])


def _baseline_rates(model: nn.Module, x: torch.Tensor, y, masks, method: str = "gradcam") -> torch.Tensor:
    """Grad-CAM's pointing-game hit rate ("gradcam" of xh.baselines.explain, the mean over the images)
    at the tolerances {TOLERANCES} pixels, four numbers in that order."""
    from .baselines import explain

    return _pointing_rates(explain(model, x, y, method), masks)


_judged("ex01-tolerance", "01_evaluating_explanations", _baseline_rates,
        tol=1e-3, what="one hit rate per tolerance",
        precheck=lambda a, ref: ("a hit rate cannot fall as the tolerance grows (a larger tolerance grows the object)."
                                 if a.numel() == ref.numel() and bool((a.diff() < -1e-9).any()) else None),
        foils=lambda ref, model, x, y, masks: {
            "these are the vanilla gradient's (saliency) rates; the exercise asks for Grad-CAM's.":
            _baseline_rates(model, x, y, masks, "saliency")},
        hint="[np.nanmean(xh.metrics.pointing_game(maps, masks, tolerance=t)) for t in (0, 2, 4, 8)] "
             "with maps = xh.baselines.explain(model, x, y, \"gradcam\").")


METRIC_COLUMNS = ("pointing_game", "attribution_localisation", "sparseness", "fidelity", "stability", "loc_error")
NORMALISE_SETTINGS = {"stability_samples": 1, "fidelity_subsets": 20, "n_steps": 8, "verbose": False}


def _metric_values(df) -> dict[str, np.ndarray]:
    loc = [c for c in df.columns if c.startswith("loc_error@")]
    out = {c: df[c].to_numpy(dtype=float) for c in METRIC_COLUMNS if c != "loc_error"}
    out["loc_error"] = df[loc].to_numpy(dtype=float)
    return out


def _ex01_normalise_reference(model: nn.Module, x: torch.Tensor, y, masks, boxes) -> set[str]:
    from .explainers import get
    from .evaluation import evaluate

    ig = get("integrated_gradients")
    a, _ = evaluate(ig, model, x, y, masks, boxes, **NORMALISE_SETTINGS)
    b, _ = evaluate(ig, model, x, y, masks, boxes, normalise=None, **NORMALISE_SETTINGS)
    va, vb = _metric_values(a), _metric_values(b)
    return {c for c in METRIC_COLUMNS if not np.allclose(va[c], vb[c], rtol=0, atol=1e-6, equal_nan=True)}


@_register("ex01-normalise", "01_evaluating_explanations",
           "the names of the metrics whose per-image values change (by more than 1e-6 on some image) when "
           "Integrated Gradients is scored with normalise=None instead of the default, with "
           f"xh.evaluation.evaluate(..., {', '.join(f'{k}={v}' for k, v in NORMALISE_SETTINGS.items())}) on the "
           f"images passed; a list of names among {METRIC_COLUMNS} (loc_error changes when any threshold's "
           "column does).",
           reference=_ex01_normalise_reference)
def _ex01_normalise(answer, model, x, y, masks, boxes):
    ref = _ex01_normalise_reference(model, x, y, masks, boxes)
    hints = {
        "stability": "stability is a distance between maps divided by a distance between inputs: it scales with the maps.",
        "fidelity": "fidelity is a correlation, unchanged by a positive factor; it changes only through the clamp.",
        "*": "compare the two evaluate() tables column by column, image by image; a scale-free metric changes "
             "only where the clamp to [-1, 1] cuts something off.",
    }
    for c in ("pointing_game", "attribution_localisation", "sparseness", "loc_error"):
        hints[c] = f"{c} is unchanged by a positive factor; it changes only where the clamp cuts values off."
    return _set_judge(answer, ref, set(METRIC_COLUMNS), hints, "metrics that change")


def _cascade_means(model: nn.Module, x: torch.Tensor, y, methods, similarity: str) -> dict[str, float]:
    from .explainers import get
    from .sanity import cascading_randomisation

    out = {}
    for m in methods:
        c = cascading_randomisation(get(m), model, x, y, similarity=similarity, signed=False)
        out[m] = float(c.loc[c["stage"] > 0, "similarity"].mean())
    return out


def _ex01_randomise_reference(model: nn.Module, x: torch.Tensor, y, methods) -> set[str]:
    return {m for m, v in _cascade_means(model, x, y, methods, "ssim").items() if v >= 0.5}


@_register("ex01-randomise", "01_evaluating_explanations",
           "the methods (of those passed as methods=) that fail the cascading randomisation check when the "
           "similarity is SSIM: their mean SSIM over the randomised stages (stage > 0) is at least 0.5, the "
           "chapter's criterion; a list of names (empty when none fails). Right when it is the same set.",
           reference=_ex01_randomise_reference)
def _ex01_randomise(answer, model, x, y, methods):
    ref = _ex01_randomise_reference(model, x, y, methods)
    if _names(answer) != ref and _names(answer) == _ex01_randomise_spearman(model, x, y, methods):
        return False, "Hint: these fail with the rank correlation; pass similarity=\"ssim\"."
    return _set_judge(answer, ref, set(methods), {"*": "a method fails when the mean of its SSIM over the "
                      "stages after the first (stage > 0) is at least 0.5."}, "methods that fail with SSIM")


def _ex01_randomise_spearman(model, x, y, methods) -> set[str]:
    return {m for m, v in _cascade_means(model, x, y, methods, "spearman").items() if v >= 0.5}


# ----------------------------------------------------------------------------
# chapter 3: sharing ratio decomposition
# ----------------------------------------------------------------------------

def _positive_shares(model: nn.Module, x: torch.Tensor, y) -> torch.Tensor:
    """Two numbers (pre, post): the share of all pixels of the SRD-input maps of the images passed (for
    their labels) whose relevance is positive, with pre-activation vectors (the default) and with
    vectors="post"."""
    from .srd import explain

    dev = _device(model)
    x, y = x.to(dev), torch.as_tensor(y).to(dev)
    return torch.tensor([float((explain(model, x, y, vectors=v) > 0).float().mean()) for v in ("pre", "post")])


_judged("ex03-post", "03_sharing_ratio_decomposition", _positive_shares,
        tol=1e-3, what="pre and post", order="pre, post",
        hint="(xh.srd.explain(cnn, x, y, vectors=v) > 0).float().mean() for v in (\"pre\", \"post\").")


def _half_shares(model: nn.Module, x_duo: torch.Tensor, classes, rule: str) -> torch.Tensor:
    from .metrics import attribution_localisation
    from .srd import explain

    maps = explain(model, x_duo.to(_device(model)).expand(2, -1, -1, -1), list(classes), rule=rule)
    left = torch.zeros_like(maps, dtype=torch.bool)
    left[..., : maps.shape[-1] // 2] = True
    return torch.tensor(attribution_localisation(maps, torch.stack([left[0], ~left[1]])), dtype=torch.float32)


def _ex03_rule_reference(model: nn.Module, x_duo: torch.Tensor, classes) -> torch.Tensor:
    """Two numbers: with rule="identity", the share of positive SRD-input relevance for the first class
    that lies on the left half of the two-object image, and for the second class on the right half (as
    the chapter measures them with xh.metrics.attribution_localisation)."""
    return _half_shares(model, x_duo, classes, "identity")


_judged("ex03-rule", "03_sharing_ratio_decomposition", _ex03_rule_reference,
        tol=1e-3, what="one share per class",
        foils=lambda ref, model, x_duo, classes: {
            "these are the shares with the class-contrastive start (the chapter's); pass rule=\"identity\".":
            _half_shares(model, x_duo, classes, "contrastive")},
        hint="explain xd.expand(2, -1, -1, -1) for pair_classes with rule=\"identity\" and measure "
             "each map's share on its own half, as the chapter's cell does.")


BETAS = (10, 30, 100)


def plain_softplus(model: nn.Module, beta: float) -> nn.Module:
    r"""A copy of ``model`` with every ``nn.ReLU6`` (and ``nn.ReLU``) replaced by a plain :math:`\mathrm{softplus}_\beta`.

    The foil of chapter 3's exercise ``ex03-relu6``: unlike
    :func:`xaihelpers.attack.smooth`, which smooths ReLU6 as
    :math:`\mathrm{softplus}_\beta(z) - \mathrm{softplus}_\beta(z - 6)`, this copy drops the cap at 6.

    Parameters
    ----------
    model : nn.Module
        The network; it is copied, never changed.
    beta : float
        The softplus slope.

    Returns
    -------
    nn.Module
        The copy, in evaluation mode.
    """
    out = copy.deepcopy(model).eval()
    for parent in out.modules():
        for name, child in parent.named_children():
            if isinstance(child, (nn.ReLU, nn.ReLU6)):
                setattr(parent, name, nn.Softplus(beta=beta))
    return out


def _logit_gaps(model: nn.Module, x: torch.Tensor, make) -> torch.Tensor:
    x = x.to(_device(model))
    with torch.no_grad():
        y = model(x)
        return torch.tensor([float((make(model, b)(x) - y).abs().max()) for b in BETAS])


def _ex03_relu6_reference(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    from .attack import smooth

    return _logit_gaps(model, x, smooth)


@_register("ex03-relu6", "03_sharing_ratio_decomposition",
           f"three numbers: the largest absolute difference between the logits of xh.attack.smooth(net, beta) "
           f"and those of net on the images passed, for beta = {BETAS} in that order; right when each is within "
           "1e-3 of the reference's value plus 1e-4 (relative and absolute tolerance).",
           reference=_ex03_relu6_reference)
def _ex03_relu6(answer, model, x):
    ref = _ex03_relu6_reference(model, x)
    a = _tensor(answer).flatten()
    if a.numel() != ref.numel():
        return False, f"expected {ref.numel()} numbers, one per beta in {BETAS}, got {a.numel()}."
    if torch.allclose(a, ref, rtol=1e-3, atol=1e-4):
        return True, f"Largest logit differences {[f'{v:.3g}' for v in ref.tolist()]} for beta = {BETAS}."
    plain = _logit_gaps(model, x, plain_softplus)
    if torch.allclose(a, plain, rtol=1e-3, atol=1e-4):
        return False, "Hint: these are the differences of the plain softplus copy; the exercise asks for xh.attack.smooth."
    return False, (f"Largest mismatch {float((a - ref).abs().max()):.3g}. Hint: for each beta, "
                   "(xh.attack.smooth(net, beta)(xp) - net(xp)).abs().max() under torch.no_grad().")


def _binarised_accuracy(model: nn.Module, x: torch.Tensor, y, batch_size: int = 256) -> np.ndarray:
    """Accuracy with the output of one ReLU at a time replaced by its 0/1 mask (the SRD paper's Figure 6).

    Chapter 3 draws these accuracies as bars; exercise ``ex03-apop-layer`` asks which
    layer costs most.

    Parameters
    ----------
    model : nn.Module
        A ReLU network (e.g. the benchmark CNN ``fmnist_cnn_relu``).
    x : torch.Tensor
        Normalised images, shape (N, 3, H, W).
    y : sequence of int or torch.Tensor
        Their labels, shape (N,).
    batch_size : int
        Images per forward pass.

    Returns
    -------
    numpy.ndarray
        One accuracy per ReLU, in the order of the forward pass.
    """
    from .apop import frozen_forward

    n_relu = sum(isinstance(m, (nn.ReLU, nn.ReLU6)) for m in model.modules())
    if n_relu == 0:
        raise ValueError(f"expected a model with nn.ReLU modules, found none in {type(model).__name__}")
    dev, y = _device(model), torch.as_tensor(y).cpu()
    acc = []
    for k in range(n_relu):
        with torch.no_grad():
            pred = torch.cat([frozen_forward(model, b.to(dev), [], binarise=k).argmax(1).cpu() for b in x.split(batch_size)])
        acc.append((pred == y).float().mean().item())
    return np.array(acc)


def _ex03_apop_layer_reference(model: nn.Module, x: torch.Tensor, y) -> set[int]:
    acc = _binarised_accuracy(model, x, y)
    width = 2 * np.sqrt(2 * max(acc.min() * (1 - acc.min()), 0.05 * 0.95) / len(x))
    return {int(k) + 1 for k in np.flatnonzero(acc - acc.min() <= width)}


@_register("ex03-apop-layer", "03_sharing_ratio_decomposition",
           "the number of the ReLU (1 = first in the forward pass) whose binarisation leaves the lowest "
           "accuracy on the images passed; right when its accuracy is within two standard errors of the "
           "difference of two binomial rates of the lowest (so the chapter's bars on more images give an "
           "accepted answer).",
           reference=_ex03_apop_layer_reference)
def _ex03_apop_layer(answer, model, x, y):
    ok_layers = _ex03_apop_layer_reference(model, x, y)
    try:
        k = int(answer)
    except (TypeError, ValueError):
        return False, f"expected one ReLU number (an int from 1), got {answer!r}."
    if k != answer or isinstance(answer, bool):
        return False, f"expected one ReLU number (an int from 1), got {answer!r}."
    if k in ok_layers:
        return True, f"Accepted ReLU numbers: {sorted(ok_layers)}."
    if k + 1 in ok_layers:
        return False, "Hint: number the ReLUs from 1, as the chart's axis does (np.argmin gives an index from 0)."
    return False, "Hint: binarise one ReLU at a time (xh.apop.frozen_forward(..., binarise=k)) and take the lowest accuracy."


# ----------------------------------------------------------------------------
# chapter 5: activation matching
# ----------------------------------------------------------------------------

def _layer_shares(model: nn.Module, x: torch.Tensor, masks) -> dict[str, torch.Tensor]:
    """Each matched activation's share of the activation term of the explanations ``masks * x``.

    Keys: ``"mse"`` and ``"std_mse"`` (weighted by :data:`~xaihelpers.actmatch.LAYER_WEIGHTS`)
    and ``"unweighted"`` (MSE alone); one pair of forward passes for all three.
    """
    from .actmatch import activation_loss, apply_mask, default_layers
    from .hooks import no_inplace, record

    layers = default_layers(model, logits=False)
    dev = _device(model)
    x = x.to(dev)
    m = torch.as_tensor(masks, dtype=x.dtype).to(dev)[:, None]
    with torch.no_grad(), no_inplace(model):
        with record(model, list(layers)) as rx:
            model(x)
        with record(model, list(layers)) as re_:
            model(apply_mask(x, m))
        out = {}
        for key, distance, weighted in (("mse", "mse", True), ("std_mse", "std_mse", True), ("unweighted", "mse", False)):
            terms = torch.tensor([float(activation_loss(rx.activations, re_.activations, {n: w if weighted else 1.0},
                                                        distance)) for n, w in layers.items()], dtype=torch.float64)
            out[key] = (terms / terms.sum()).float()
    return out


def _ex05_distance_foils(shares: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {"these are the shares under the standardised distance; the exercise asks for distance=\"mse\".":
            shares["std_mse"],
            "these shares leave out the layer weights w_l; multiply each layer's distance by its weight first.":
            shares["unweighted"]}


def _ex05_distance_reference(model: nn.Module, x: torch.Tensor, masks) -> torch.Tensor:
    """One number per matched activation of xh.actmatch.default_layers(net, logits=False), in that
    order: the layer's share of the weighted MSE activation term (w_l times the layer's distance,
    divided by the sum over the layers) of the explanations of the photos passed with the masks passed."""
    return _layer_shares(model, x, masks)["mse"]


_judged("ex05-distance", "05_activation_matching", _ex05_distance_reference,
        tol=1e-3, what="one share per matched layer",
        foils=lambda ref, model, x, masks: _ex05_distance_foils(_layer_shares(model, x, masks)),
        hint="for each (layer, w) in xh.actmatch.default_layers(net, logits=False).items(), "
             "w * xh.actmatch.activation_distance(net, xp, masks, {layer: 1.0}), then divide by the sum.")


def _fill_probabilities(model: nn.Module, x: torch.Tensor, masks, target, which: str = "p_kept") -> torch.Tensor:
    from .actmatch import necessity
    from .occlusion import background

    return torch.tensor([float(np.mean(necessity(model, x, masks, target, fill=f)[which]))
                         for f in ("mean", background(x, "blur"))])


def _ex05_fill_reference(model: nn.Module, x: torch.Tensor, masks, target) -> torch.Tensor:
    """Two numbers: the mean probability of the target on the explanations of the images passed (the
    masks passed kept, the rest filled), with the mean colour (fill="mean") and with a blur of each
    image (fill=xh.occlusion.background(x, "blur")), in that order."""
    return _fill_probabilities(model, x, masks, target)


_judged("ex05-fill", "05_activation_matching", _ex05_fill_reference,
        tol=1e-3, what="mean colour and blur", order="mean colour, blur",
        foils=lambda ref, model, x, masks, target: {
            "these are the probabilities on the complement (the mask's pixels hidden, p_removed); the exercise "
            "asks for the explanation itself (p_kept).": _fill_probabilities(model, x, masks, target, "p_removed")},
        hint="np.mean(xh.actmatch.necessity(cnn, x, masks, target, fill=f)[\"p_kept\"]) for f in "
             "(\"mean\", xh.occlusion.background(x, \"blur\")).")


AUTHORS_MASKNET = ((32, 64, 128, 256), 512)


def _parameters(widths, bottleneck) -> int:
    from .actmatch import MaskNet

    return sum(p.numel() for p in MaskNet(widths, bottleneck).parameters())


def _ex05_narrow_reference(widths, bottleneck) -> torch.Tensor:
    return torch.tensor([float(_parameters(widths, bottleneck)), float(_parameters(*AUTHORS_MASKNET))], dtype=torch.float64)


@_register("ex05-narrow", "05_activation_matching",
           "two whole numbers: the parameters of xh.actmatch.MaskNet with the widths and bottleneck passed (the "
           f"narrow network) and of the authors' MaskNet(widths={AUTHORS_MASKNET[0]}, "
           f"bottleneck={AUTHORS_MASKNET[1]}), in that order; right when both are exact.",
           reference=_ex05_narrow_reference)
def _ex05_narrow(answer, widths, bottleneck):
    ref = _ex05_narrow_reference(widths, bottleneck)
    a = _tensor(answer).double().flatten()
    if a.numel() != 2:
        return False, f"expected 2 numbers (narrow, the authors'), got {a.numel()}."
    if bool((a == ref).all()):
        return True, f"The authors' network has {ref[1] / ref[0]:.1f} times as many parameters as the narrow one."
    if bool((a == ref.flip(0)).all()):
        return False, "Hint: the two numbers are swapped: the order is (narrow, the authors')."
    return False, "Hint: sum(p.numel() for p in xh.actmatch.MaskNet(widths, bottleneck).parameters()) for each network."


# ----------------------------------------------------------------------------
# chapter 4: activation deactivation
# ----------------------------------------------------------------------------

def _kept_shares(model: nn.Module, x: torch.Tensor, masks, target, rule: str) -> torch.Tensor:
    """Two numbers: the share of the explanations passed (masks, 1 = kept) on which ConvAD with the rule
    passed still predicts the target, with deactivate="all" (the default) and with deactivate="spatial",
    in that order."""
    from .convad import DEACTIVATE, wrap

    dev = _device(model)
    x, t = x.to(dev), torch.as_tensor(target).reshape(-1).to(dev)
    m = torch.as_tensor(np.asarray(masks) if not isinstance(masks, torch.Tensor) else masks).to(dev, x.dtype)
    with torch.no_grad():
        return torch.tensor([float((wrap(model, rule, deactivate=d)(x, m).argmax(1) == t).float().mean())
                             for d in DEACTIVATE])


_judged("ex04-bn", "04_activation_deactivation", _kept_shares,
        tol=1e-3, what="one share per deactivate setting", order="\"all\", \"spatial\"",
        hint="for d in xh.convad.DEACTIVATE, the share of images with "
             "xh.convad.wrap(cnn, RULE, deactivate=d)(xk, masks).argmax(1) == target.")


def patch_masks(side: int, k: int, stride: int) -> torch.Tensor:
    """Occlusion-sensitivity masks: all ones but a ``k`` x ``k`` square of zeros at each ``stride`` position.

    The masks of chapter 4's exercise ``ex04-occlusion`` (Zeiler & Fergus's grey patch,
    as a mask for :func:`xaihelpers.causal.masked_predictor`).

    Parameters
    ----------
    side : int
        Height and width of the (square) image.
    k, stride : int
        Side of the patch and step between its positions, in pixels.

    Returns
    -------
    torch.Tensor
        Shape (n * n, side, side), n = (side - k) // stride + 1, row-major over the
        patch positions; 1 = visible.
    """
    if not 0 < k <= side or stride <= 0:
        raise ValueError(f"expected 0 < k <= side and stride > 0, got side={side}, k={k}, stride={stride}")
    n = (side - k) // stride + 1
    masks = torch.ones(n * n, side, side)
    for i in range(n):
        for j in range(n):
            masks[i * n + j, i * stride:i * stride + k, j * stride:j * stride + k] = 0
    return masks


OCCLUSION_PATCH = (16, 8)  # k and stride of ex04-occlusion, for 64-pixel benchmark images


def _occlusion_drops(model: nn.Module, x1: torch.Tensor, how: str, rule: str) -> torch.Tensor:
    from .causal import masked_predictor

    k, stride = OCCLUSION_PATCH
    side = x1.shape[-1]
    n = (side - k) // stride + 1
    with torch.no_grad():
        p = model(x1.to(_device(model))).softmax(1)[0]
        t = int(p.argmax())
        patched = masked_predictor(model, x1, how, rule)(patch_masks(side, k, stride)).softmax(1)[:, t]
    return (p[t] - patched).reshape(n, n).cpu()


def _ex04_occlusion_reference(model: nn.Module, x1: torch.Tensor, rule: str) -> torch.Tensor:
    """The occlusion-sensitivity map of the image passed for its top-1 class, with a
    {OCCLUSION_PATCH[0]} x {OCCLUSION_PATCH[0]} patch at stride {OCCLUSION_PATCH[1]} switched off by
    ConvAD (the rule passed): a tensor (n, n) over the patch positions, row by row, of the drop p(image)
    - p(patched) of the class's probability."""
    return _occlusion_drops(model, x1, "convad", rule)


_judged("ex04-occlusion", "04_activation_deactivation", _ex04_occlusion_reference,
        tol=1e-3, maps=True,
        foils=lambda ref, model, x1, rule: {
            "this is the map of a painted patch (how=\"zero\"); switch the patch off with how=\"convad\".":
            _occlusion_drops(model, x1, "zero", rule),
            "the signs are flipped: the drop is p(image) - p(patched).": -ref,
            "the map is transposed: position (i, j) is the patch at row i * stride, column j * stride.": ref.T},
        hint="masks = xh.exercises.patch_masks(64, 16, 8); predict = xh.causal.masked_predictor(cnn, x1, "
             "\"convad\", RULE); drops = p[t] - predict(masks).softmax(1)[:, t], reshaped to (7, 7).")


SEEDS = (0, 1, 2)


def _seed_agreement(model: nn.Module, x1: torch.Tensor, target: int, iters: int, similarity: str = "spearman") -> float:
    from itertools import combinations

    from .causal import masked_predictor, responsibility
    from .metrics import pearson, spearman

    maps = [responsibility(masked_predictor(model, x1, "zero"), tuple(x1.shape[-2:]), int(target), iters=iters,
                           seed=s, verbose=False)[0] for s in SEEDS]
    sim = spearman if similarity == "spearman" else pearson
    return float(np.nanmean([sim(maps[a][None], maps[b][None])[0] for a, b in combinations(range(len(maps)), 2)]))


def _ex04_iters_reference(model: nn.Module, x1: torch.Tensor, target: int, iters: int) -> torch.Tensor:
    """Two numbers: the mean Spearman correlation (xh.metrics.spearman) over the pairs of the seeds
    {SEEDS} between the responsibility maps of the image passed for the class passed (how="zero"), with
    one tree and with the number of trees passed, in that order."""
    return torch.tensor([_seed_agreement(model, x1, target, k) for k in (1, iters)])


_judged("ex04-iters", "04_activation_deactivation", _ex04_iters_reference,
        tol=1e-3, what="one tree and more trees", order="one tree, more trees",
        foils=lambda ref, model, x1, target, iters: {
            "these are Pearson correlations; the exercise asks for xh.metrics.spearman.":
            torch.tensor([_seed_agreement(model, x1, target, k, "pearson") for k in (1, iters)])},
        hint="for each number of trees, the maps of seeds 0, 1 and 2 from xh.causal.responsibility("
             "xh.causal.masked_predictor(cnn, x1, \"zero\"), (64, 64), t, iters=k, seed=s, "
             "verbose=False)[0], and the mean of xh.metrics.spearman over the three pairs.")


# ----------------------------------------------------------------------------
# chapter 2: guided feature inversion
# ----------------------------------------------------------------------------

def _duo_correlations(model: nn.Module, x_duo: torch.Tensor, pair, steps: int, settings: dict) -> torch.Tensor:
    """Two numbers: the Pearson correlation (xh.metrics.pearson) between the GFI masks of the two-object
    image passed for its two classes, with the settings passed, first with the default removal weight
    and then with lam=0."""
    from .gfi import explain
    from .metrics import pearson

    x2 = x_duo.to(_device(model)).expand(2, -1, -1, -1)
    out = []
    for lam in (settings.get("lam", 1.0), 0.0):
        m = explain(model, x2, list(pair), iterations=steps, verbose=False, **{**settings, "lam": lam})
        out.append(float(pearson(m[:1], m[1:])[0]))
    return torch.tensor(out)


_judged("ex02-lambda", "02_guided_feature_inversion", _duo_correlations,
        tol=5e-3, what="default lam and lam=0", order="default lam, lam=0",
        hint="m = xh.gfi.explain(cnn, xdb.expand(2, -1, -1, -1), pair, iterations=STEPS, lam=lam, "
             "**GFI_BENCH) for lam in (1.0, 0.0), then xh.metrics.pearson(m[:1], m[1:]).")


def _score_correlations(model: nn.Module, x: torch.Tensor, y, steps: int, settings: dict, spearman: bool = False) -> torch.Tensor:
    """One number per image passed: the Pearson correlation (xh.metrics.pearson) between its GFI mask
    with probabilities=True (softmax in Eq. 3) and with probabilities=False (logits), the other settings
    those passed."""
    from .gfi import explain
    from .metrics import pearson
    from .metrics import spearman as rank_correlation

    x = x.to(_device(model))
    m = {p: explain(model, x, y, iterations=steps, verbose=False, **{**settings, "probabilities": p}) for p in (True, False)}
    sim = rank_correlation if spearman else pearson
    return torch.as_tensor(np.asarray(sim(m[True], m[False]), dtype=np.float64)).float()


_judged("ex02-logits", "02_guided_feature_inversion", _score_correlations,
        tol=5e-3, what="one correlation per image",
        foils=lambda ref, model, x, y, steps, settings: {
            "these are rank correlations; the exercise asks for xh.metrics.pearson.":
            _score_correlations(model, x, y, steps, settings, spearman=True)},
        hint="xh.metrics.pearson(m_prob, m_logit) with m_p = xh.gfi.explain(cnn, x, y, iterations=STEPS, "
             "**{**GFI_BENCH, \"probabilities\": p}) for p in (True, False).")


STAGE1 = (0, 40)


def _stage1_shares(model: nn.Module, x: torch.Tensor, y, objects, steps: int, settings: dict) -> torch.Tensor:
    """Two numbers: the mean share of GFI's mask that lies on the object
    (xh.metrics.attribution_localisation with the object masks passed) over the images passed, with
    stage1_iterations = {STAGE1} in that order, the total iterations and the other settings those
    passed."""
    from .gfi import explain
    from .metrics import attribution_localisation

    x = x.to(_device(model))
    return torch.tensor([float(np.nanmean(attribution_localisation(
        explain(model, x, y, iterations=steps, stage1_iterations=s, verbose=False, **settings), objects)))
        for s in STAGE1])


_judged("ex02-stage1", "02_guided_feature_inversion", _stage1_shares,
        tol=5e-3, what="one share per stage-1 length", order="0, 40 stage-1 iterations",
        hint="for s in (0, 40): np.nanmean(xh.metrics.attribution_localisation(xh.gfi.explain(cnn, x, y, "
             "iterations=STEPS, stage1_iterations=s, **GFI_BENCH), objects)).")


# ----------------------------------------------------------------------------
# chapter 6: comparison
# ----------------------------------------------------------------------------

DEBUG_WEIGHTS = {"fidelity": 2.0, "deletion": 2.0, "insertion": 2.0, "seconds": 0.0, "per_fwd_bwd": 0.0}
"""Exercise ``ex06-weights``: faithfulness counts double and speed not at all; every other metric counts once."""


RANK_SUMMARIES = ("mean rank", "mean rank low", "mean rank high")


def _weighted_ranks(rank, weights: dict | None = None):
    import pandas as pd

    r = rank.drop(columns=[c for c in RANK_SUMMARIES if c in rank.columns])
    w = {c: 1.0 for c in r.columns} if weights is None else {c: float(weights.get(c, 1.0)) for c in r.columns}
    w = pd.Series(w)
    return (r * w).sum(axis=1) / (r.notna() * w).sum(axis=1)


def _ex06_weights_reference(rank):
    return _weighted_ranks(rank, DEBUG_WEIGHTS).sort_values()


@_register("ex06-weights", "06_comparison",
           "the weighted mean rank of every method of the ranking passed (the chapter's rank, from "
           "xh.compare.ranks on the per-image scores: ties shared, invalid metrics left out), as a pandas Series "
           "(or a dict) from method to number: each metric's rank times its weight (fidelity, deletion and "
           "insertion 2; seconds and per_fwd_bwd 0; every other metric 1), summed and divided by the sum of the "
           "weights of the metrics ranked; right when each method's value is within 1e-6 of the reference.",
           reference=_ex06_weights_reference)
def _ex06_weights(answer, rank):
    import pandas as pd

    ref = _ex06_weights_reference(rank)
    if not isinstance(answer, (dict, pd.Series)):
        return False, f"expected a pandas Series or a dict from method to weighted mean rank, got {type(answer).__name__}."
    a = pd.Series(answer, dtype=float)
    missing, extra = sorted(set(ref.index) - set(a.index)), sorted(set(a.index) - set(ref.index))
    if missing or extra:
        return False, f"expected one value per method of the ranking; missing {missing}, not in it {extra}."
    a = a.reindex(ref.index)
    if np.allclose(a, ref, rtol=0, atol=1e-6):
        return True, f"Best under these weights: {ref.index[0]} ({ref.iloc[0]:.2f})."
    plain = _weighted_ranks(rank).reindex(ref.index)
    if np.allclose(a, plain, rtol=0, atol=1e-6):
        return False, "Hint: these are the unweighted mean ranks; multiply each metric's rank by its weight first."
    return False, ("Hint: r = rank.drop(columns=[\"mean rank\", \"mean rank low\", \"mean rank high\"]); w = pd.Series({c: "
                   "weights.get(c, 1) for c in r.columns}); (r * w).sum(axis=1) / (r.notna() * w).sum(axis=1) (a missing "
                   "rank does not count).")


TOP_SHARE = 0.1


def _top_iou(maps: dict, share: float = TOP_SHARE):
    import pandas as pd

    from .evaluation import top_masks

    names = list(maps)
    top = {k: top_masks(m, [share] * len(m), tuple(m.shape[-2:])).bool().cpu() for k, m in maps.items()}
    out = pd.DataFrame(np.eye(len(names)), index=names, columns=names)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            inter = (top[a] & top[b]).flatten(1).sum(1).double()
            union = (top[a] | top[b]).flatten(1).sum(1).double()
            out.loc[a, b] = out.loc[b, a] = float((inter / union.clamp(min=1)).mean())
    return out


@_register("ex06-agree", "06_comparison",
           f"a table (pandas DataFrame, methods x methods, as xh.compare.agreement's) of the mean intersection over "
           f"union, over the images, of the methods' top-{TOP_SHARE:.0%} masks "
           "(xh.evaluation.top_masks(m, [0.1] * len(m), m.shape[-2:])), 1 on the diagonal; right when every entry is "
           "within 1e-3 of the reference.",
           reference=_top_iou)
def _ex06_agree(answer, maps):
    import pandas as pd

    from .compare import agreement

    ref = _top_iou(maps)
    if not isinstance(answer, pd.DataFrame):
        return False, f"expected a pandas DataFrame indexed by method on both axes, got {type(answer).__name__}."
    if set(answer.index) != set(ref.index) or set(answer.columns) != set(ref.columns):
        return False, f"expected the methods {list(ref.index)} on both axes."
    a = answer.reindex(index=ref.index, columns=ref.columns).to_numpy(dtype=float)
    gap = float(np.nanmax(np.abs(a - ref.to_numpy())))
    if gap <= 1e-3:
        return True, f"Largest difference from the reference: {gap:.1e} (tolerance 0.001)."
    rho = agreement(maps).to_numpy()
    if np.allclose(a, rho, atol=1e-3, equal_nan=True):
        return False, "Hint: this is the rank correlation (xh.compare.agreement); the exercise asks for the IoU of the top masks."
    return False, (f"Largest difference from the reference: {gap:.3g}. Hint: IoU = (a & b).sum((1, 2)) / (a | b).sum((1, 2)) "
                   "per image of the two methods' boolean top masks, then the mean over the images.")


ACTIVATION_METHODS = ("srd_input", "saliency", "guided_backprop")


def _activation_shares(model: nn.Module, x: torch.Tensor, y, masks) -> torch.Tensor:
    """Three numbers: the mean attribution localisation (xh.metrics.attribution_localisation with the
    object masks passed) of the maps of {ACTIVATION_METHODS} (xh.explainers.get(name)) on the network
    passed, for the images and labels passed, in that order."""
    from .explainers import get
    from .metrics import attribution_localisation

    dev = _device(model)
    x, y = x.to(dev), torch.as_tensor(y).to(dev)
    return torch.tensor([float(np.nanmean(attribution_localisation(get(m)(model, x, y), masks)))
                         for m in ACTIVATION_METHODS])


_judged("ex06-activation", "06_comparison", _activation_shares,
        tol=1e-3, what="one share per method",
        hint="for m in (\"srd_input\", \"saliency\", \"guided_backprop\"): np.nanmean("
             "xh.metrics.attribution_localisation(xh.explainers.get(m)(gelu, x, y), masks)), with the "
             "GELU network gelu.")


# ----------------------------------------------------------------------------
# the lessons: implement one equation, checked against the package
# ----------------------------------------------------------------------------

@dataclass(frozen=True)
class _Case:
    """One input of an implement-the-equation check: what it is, the arguments, and the package's answer."""

    what: str
    args: tuple | Callable[[], tuple]  # a function when each call needs fresh inputs (an autograd graph)
    reference: torch.Tensor


def _function_judge(answer, cases: list[_Case], foils: dict[str, Callable[..., torch.Tensor]],
                    rtol: float, atol: float, hint: str):
    """Run the reader's function on every case; the first that fails is named, with the largest gap.

    ``foils`` maps a hint to a function computing a mistake readers make; when the answer
    matches a foil on the failing case, that hint is given instead of the general one.
    """
    if not callable(answer):
        return False, f"expected a function, got {type(answer).__name__}."
    for case in cases:
        args = case.args
        try:
            got = answer(*(args() if callable(args) else args))
        except Exception as err:  # noqa: BLE001  (the reader's code may raise anything)
            return False, f"on {case.what} your function raised {type(err).__name__}: {err}"
        got = _tensor(got).to(case.reference.dtype)
        ref = case.reference.detach().cpu()
        if got.shape != ref.shape and got.numel() == ref.numel() == 1:  # a number, whatever its shape
            got = got.reshape(ref.shape)
        if got.shape != ref.shape:
            return False, f"on {case.what}: expected shape {tuple(ref.shape)}, got {tuple(got.shape)}."
        if not torch.allclose(got, ref, rtol=rtol, atol=atol):
            gap = float((got - ref).abs().max())
            for text, foil in foils.items():
                alt = _tensor(foil(*(args() if callable(args) else args))).to(ref.dtype)
                if alt.shape == got.shape and torch.allclose(got, alt, rtol=rtol, atol=atol):
                    return False, f"on {case.what}: largest difference {gap:.3g}. Hint: {text}"
            return False, f"on {case.what}: largest difference {gap:.3g} (tolerance {atol:g} + {rtol:g} x |reference|). Hint: {hint}"
    return True, f"Your function agrees with the package on all {len(cases)} inputs: " + "; ".join(c.what for c in cases) + "."


def _implemented(name: str, chapter: str, cases: Callable[[torch.device], list[_Case]], expected: str, *,
                 hint: str, foils: dict[str, Callable[..., torch.Tensor]] | None = None,
                 rtol: float = 1e-4, atol: float = 1e-5) -> None:
    """Register an implement-the-equation checker: the answer is a function, run on ``cases(device)``."""

    def reference(device=None):
        """The package's answers on the check's inputs (a list, one per input)."""
        return [c.reference for c in cases(torch.device(device or "cpu"))]

    def judge(answer, device=None):
        return _function_judge(answer, cases(torch.device(device or "cpu")), foils or {}, rtol, atol, hint)

    CHECKERS[name] = _Checker(chapter, f"{expected} (checked with rtol {rtol:g} and atol {atol:g})", reference, judge)


def _gfi_eq4_cases(device: torch.device) -> list[_Case]:
    from .gfi import mask_from_weights

    g = torch.Generator().manual_seed(2)
    out = []
    for what, n, c, h, w, size, signed in [
        ("random weights, 2 images of 8 channels at 4 x 4, upsampled to 16 x 16", 2, 8, 4, 4, (16, 16), False),
        ("a non-square input, 3 images of 5 channels at 3 x 5, upsampled to 12 x 20", 3, 5, 3, 5, (12, 20), False),
        ("weights of both signs, so some of the weighted sum is negative", 2, 6, 4, 4, (8, 8), True),
    ]:
        weights = torch.rand(n, c, generator=g) * (2 if signed else 1) - (1 if signed else 0)
        basis = torch.rand(n, c, h, w, generator=g)
        out.append(_Case(what, (weights.to(device), basis.to(device), size),
                         mask_from_weights(weights, basis, size).cpu()))
    basis = torch.rand(1, 4, 4, 4, generator=g)
    out.append(_Case("the edge case: all weights 0, so the weighted sum is 0 everywhere (the mask must be 0, not NaN)",
                     (torch.zeros(1, 4, device=device), basis.to(device), (8, 8)),
                     mask_from_weights(torch.zeros(1, 4), basis, (8, 8)).cpu()))
    return out


def _eq4_normalised_first(weights, basis, size):
    m = (weights[:, :, None, None] * basis).sum(1, keepdim=True).clamp(min=0)
    m = m / (m.flatten(1).amax(1)[:, None, None, None] + 1e-12)
    return F.interpolate(m, size=size, mode="bilinear", align_corners=False)[:, 0]


def _eq4_no_clamp(weights, basis, size):
    m = F.interpolate((weights[:, :, None, None] * basis).sum(1, keepdim=True), size=size, mode="bilinear",
                      align_corners=False)[:, 0]
    return m / (m.flatten(1).amax(1)[:, None, None] + 1e-12)


def _eq4_nearest(weights, basis, size):
    m = F.interpolate((weights[:, :, None, None] * basis).sum(1, keepdim=True), size=size, mode="nearest")[:, 0]
    m = m.clamp(min=0)
    return m / (m.flatten(1).amax(1)[:, None, None] + 1e-12)


_implemented(
    "ex02-eq4", "02_gfi_lesson", _gfi_eq4_cases,
    "a function mask(weights, basis, size) -> (N, H, W): Eq. 4's weighted sum of the channels of basis "
    "(N, C, h, w) by weights (N, C), upsampled bilinearly (align_corners=False) to size = (H, W), negatives "
    "cut at 0, each mask divided by its maximum (+ 1e-12)",
    hint="sum over the channels first, upsample with F.interpolate(..., mode='bilinear', align_corners=False), "
         "then clamp(min=0) and divide each mask by its own maximum plus 1e-12.",
    foils={
        "normalise after upsampling: bilinear upsampling can lower the maximum, so a mask divided by its "
        "maximum first no longer reaches 1.": _eq4_normalised_first,
        "negative values are cut at 0 before the division by the maximum (clamp(min=0)).": _eq4_no_clamp,
        "upsample bilinearly (mode='bilinear', align_corners=False), not with nearest neighbours.": _eq4_nearest,
    })


def _gini_cases(device: torch.device) -> list[_Case]:
    from .metrics import sparseness

    g = torch.Generator().manual_seed(1)
    one_hot = torch.zeros(1, 5, 5)
    one_hot[0, 2, 3] = 2.0
    out = [_Case(what, (m.to(device),), torch.from_numpy(sparseness(m)))
           for what, m in [
               ("random maps of both signs, 3 of 8 x 8 (the Gini index reads |s|)", torch.randn(3, 8, 8, generator=g)),
               ("a non-square batch, 2 maps of 6 x 10 with a few large values", torch.rand(2, 6, 10, generator=g) ** 8),
               ("one pixel holds everything, a 5 x 5 map", one_hot),
               ("the edge case: a flat map (its sparseness is 0)", torch.full((1, 4, 4), 0.3)),
           ]]
    return out


def _gini_positive_part(maps):
    v = maps.double().clamp(min=0).flatten(1).sort(1).values
    d = v.shape[1]
    k = torch.arange(1, d + 1, dtype=torch.float64, device=v.device)
    return 1 - 2 * (v / v.sum(1, keepdim=True) * (d - k + 0.5) / d).sum(1)


def _gini_descending(maps):
    v = maps.double().abs().flatten(1).sort(1, descending=True).values
    d = v.shape[1]
    k = torch.arange(1, d + 1, dtype=torch.float64, device=v.device)
    return 1 - 2 * (v / v.sum(1, keepdim=True) * (d - k + 0.5) / d).sum(1)


def _gini_whole_step(maps):
    v = maps.double().abs().flatten(1).sort(1).values
    d = v.shape[1]
    k = torch.arange(1, d + 1, dtype=torch.float64, device=v.device)
    return 1 - 2 * (v / v.sum(1, keepdim=True) * (d - k + 1) / d).sum(1)


_implemented(
    "ex01-gini", "01_metrics_lesson", _gini_cases,
    "a function my_sparseness(maps) -> (N,): the Gini index of each map's absolute values (N, H, W), sorted "
    "ascending, 1 - 2 sum_r v_(r) / ||v||_1 (d - r + 0.5) / d with r = 1..d",
    hint="v = maps.abs().flatten(1).sort(1).values; r = torch.arange(1, d + 1); "
         "1 - 2 * (v / v.sum(1, keepdim=True) * (d - r + 0.5) / d).sum(1).",
    foils={
        "the index reads absolute values (maps.abs()), not only the positive part.": _gini_positive_part,
        "sort ascending: the largest weight (d - r + 0.5) / d goes to the smallest value.": _gini_descending,
        "the weight is (d - r + 0.5) / d, half a step less than (d - r + 1) / d.": _gini_whole_step,
    })


def _srd_eq4_cases(device: torch.device) -> list[_Case]:
    from .srd import start_relevance

    g = torch.Generator().manual_seed(3)
    out = []
    for what, n, c, h, w, k, zero in [
        ("a random head on 2 encoder outputs of 6 channels at 4 x 4, 5 classes", 2, 6, 4, 4, 5, False),
        ("a non-square encoder output, 3 images of 8 channels at 3 x 5, 10 classes", 3, 8, 3, 5, 10, False),
        ("the edge case: an encoder output of zeros (the map must be 0, not NaN)", 1, 4, 2, 2, 3, True),
    ]:
        a = torch.zeros(n, c, h, w) if zero else torch.randn(n, c, h, w, generator=g)
        head = torch.randn(k, c, generator=g)
        target = torch.randint(0, k, (n,), generator=g)

        def make(a=a, head=head, target=target):
            start = a.clone().to(device).requires_grad_(True)
            logits = start.pow(2).mean((2, 3)) @ head.to(device).T  # a non-linear head: the gradient depends on A
            return logits, start, target.to(device)

        ref = start_relevance(*make()).cpu()
        out.append(_Case(what, make, ref))
    return out


def _srd_start_identity(logits, start, target):
    (grad,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), start)
    return (grad.mean((2, 3), keepdim=True) * start).sum(1).clamp(min=0).detach()


def _srd_start_no_relu(logits, start, target):
    score = logits.gather(1, target[:, None])[:, 0] - logits.mean(1)
    (grad,) = torch.autograd.grad(score.sum(), start)
    return (grad.mean((2, 3), keepdim=True) * start).sum(1).detach()


def _srd_start_summed_gradient(logits, start, target):
    score = logits.gather(1, target[:, None])[:, 0] - logits.mean(1)
    (grad,) = torch.autograd.grad(score.sum(), start)
    return (grad.sum((2, 3), keepdim=True) * start).sum(1).clamp(min=0).detach()


_implemented(
    "ex03-eq4", "03_srd_lesson", _srd_eq4_cases,
    "a function start(logits, A, target) -> (N, h, w): Eq. 4, the class-contrastive Grad-CAM of the encoder "
    "output A (N, C, h, w, in the graph of logits (N, K)): alpha_k = the mean over positions of the gradient "
    "of y_c - mean_k' y_k' with respect to A^k, then ReLU(sum_k alpha_k A^k), detached",
    hint="score = logits.gather(1, target[:, None])[:, 0] - logits.mean(1); grad = torch.autograd.grad(score.sum(), A)[0]; "
         "(grad.mean((2, 3), keepdim=True) * A).sum(1).clamp(min=0).",
    foils={
        "Eq. 4 is class-contrastive: differentiate the target's logit minus the mean of all logits.": _srd_start_identity,
        "the negative values are cut at 0 (the ReLU of Eq. 4).": _srd_start_no_relu,
        "alpha_k is the mean of the gradient over the positions, not its sum.": _srd_start_summed_gradient,
    })


def _convad_phi_cases(device: torch.device) -> list[_Case]:
    from .convad import position_attribution

    g = torch.Generator().manual_seed(4)
    out = []
    for what, layer, h, w in [
        ("a random binary mask through a 3 x 3 convolution with padding 1", nn.Conv2d(3, 4, 3, padding=1), 8, 8),
        ("a random mask through a 5 x 5 convolution with stride 2, padding 2 and a non-square input",
         nn.Conv2d(3, 4, 5, stride=2, padding=2), 9, 12),
        ("a random mask through a 2 x 2 max-pooling", nn.MaxPool2d(2), 8, 8),
        ("a random mask through a 3 x 3 convolution with dilation 2", nn.Conv2d(3, 4, 3, padding=2, dilation=2), 10, 10),
    ]:
        phi = (torch.rand(2, 1, h, w, generator=g) > 0.5).double()
        out.append(_Case(what, (phi.to(device), layer.to(device)), position_attribution(phi, layer).cpu()))
    conv = nn.Conv2d(3, 4, 3, padding=1)
    ones = torch.ones(1, 1, 6, 6, dtype=torch.float64)
    out.append(_Case("the edge case: an all-ones mask with zero padding around it (padding counts as visible: "
                     "every position must be exactly 1)", (ones.to(device), conv.to(device)),
                     position_attribution(ones, conv).cpu()))
    return out


def _phi_padding_hidden(phi, layer):
    from .convad import _window  # the layer's kernel, stride, padding and dilation, as ConvAD reads them

    k, s, p, d = _window(layer)
    ones = torch.ones(1, 1, *k, dtype=phi.dtype, device=phi.device)
    return F.conv2d(F.pad(phi, (p[1], p[1], p[0], p[0]), value=0.0), ones, stride=s, dilation=d) / (k[0] * k[1])


def _phi_sum(phi, layer):
    from .convad import _window

    k, s, p, d = _window(layer)
    ones = torch.ones(1, 1, *k, dtype=phi.dtype, device=phi.device)
    return F.conv2d(F.pad(phi, (p[1], p[1], p[0], p[0]), value=1.0), ones, stride=s, dilation=d)


_implemented(
    "ex04-phi", "04_convad_lesson", _convad_phi_cases,
    "a function attribution(phi, layer) -> (N, 1, H', W'): the position attribution of the layer's outputs, "
    "the mean of phi (N, 1, H, W, float64, 1 = visible) over each output position's window, with the layer's "
    "kernel, stride, padding and dilation, padding counted as visible (1)",
    hint="pad phi with 1 (F.pad(phi, (p, p, p, p), value=1.0)), convolve with a kernel of ones "
         "(F.conv2d(..., torch.ones(1, 1, kh, kw, dtype=phi.dtype), stride=s, dilation=d)) and divide by kh * kw; "
         "a pooling layer's stride defaults to its kernel size.",
    foils={
        "padding carries nothing from the image, so it counts as visible: pad with 1, not 0.": _phi_padding_hidden,
        "the attribution is the mean over the window, not the sum: divide by the number of taps.": _phi_sum,
    })


def _am_tv_cases(device: torch.device) -> list[_Case]:
    from .actmatch import tv_loss

    g = torch.Generator().manual_seed(5)
    out = []
    for what, m in [
        ("a random soft mask of shape (2, 8, 8)", torch.rand(2, 8, 8, generator=g)),
        ("a random binary mask of shape (1, 1, 6, 10) (a channel axis, a non-square mask)",
         (torch.rand(1, 1, 6, 10, generator=g) > 0.5).float()),
        ("a checkerboard of shape (1, 4, 4): every horizontal and vertical pair differs, no diagonal pair does",
         (torch.arange(4)[:, None] + torch.arange(4)[None]).remainder(2).float()[None]),
        ("the edge case: a constant mask (its total variation is 0)", torch.full((1, 5, 5), 0.7)),
    ]:
        out.append(_Case(what, (m.to(device),), tv_loss(m).cpu()))
    return out


def _tv4(m):
    m = m if m.ndim == 4 else m[:, None]
    return ((m[..., :, 1:] - m[..., :, :-1]).abs().mean() + (m[..., 1:, :] - m[..., :-1, :]).abs().mean()) / 2


def _tv_squared(m):
    m = m if m.ndim == 4 else m[:, None]
    diffs = [m[..., :, 1:] - m[..., :, :-1], m[..., 1:, :] - m[..., :-1, :],
             m[..., 1:, 1:] - m[..., :-1, :-1], m[..., 1:, :-1] - m[..., :-1, 1:]]
    return sum(d.pow(2).mean() for d in diffs) / 4


_implemented(
    "ex05-tv", "05_actmatch_lesson", _am_tv_cases,
    "a function tv(m) -> a scalar tensor: the total variation over the 8-neighbourhood, the mean absolute difference "
    "of neighbouring values along each of the 4 directions (right, down, down-right, down-left), averaged over the "
    "4 directions; m of shape (N, H, W) or (N, 1, H, W)",
    hint="for the four shifts (0, 1), (1, 0), (1, 1), (1, -1), take (m[..., a] - m[..., b]).abs().mean() over the "
         "overlapping part, then the mean of the four.",
    foils={
        "the neighbourhood has 8 neighbours: add the two diagonal directions (down-right and down-left).": _tv4,
        "the total variation takes absolute differences, not squared ones.": _tv_squared,
    })
