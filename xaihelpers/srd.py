"""Sharing Ratio Decomposition (Han, Kim & Kwak 2024): relevance over pointwise feature vectors.

A *pointwise feature vector* (PFV) :math:`v^k_j \\in \\mathbb{R}^C` is the column of a
feature map at position :math:`j`. Between two activation layers the network is
affine, so the pre-activation PFV :math:`v^k_j` is a sum of *partial vectors*, one per
PFV :math:`v^l_i` of the previous activation layer in its receptive field (Eq. 5):

.. math:: v^k_j = \\sum_{i \\in RF_j} \\hat v^l_{i \\to j}, \\qquad
          \\hat v^l_{i\\to j} = f^l_{i\\to j}(v^l_i).

The *sharing ratio* of :math:`i` in :math:`j` is the share of :math:`v^k_j` along itself
(Eq. 6), and relevance flows back by it (Eqs. 7-8):

.. math:: \\mu^{l\\to k}_{i\\to j} = \\frac{\\langle \\hat v^l_{i\\to j}, v^k_j\\rangle}{\\lVert v^k_j\\rVert^2},
          \\qquad R^l_i = \\sum_j \\mu^{l\\to k}_{i\\to j} R^k_j .

It starts from the class-contrastive Grad-CAM map of the encoder output (Eq. 4).
Activations act position by position, so a PFV's relevance is the same before and
after its activation; their recorded on/off pattern enters through the partial
vectors of the next layer (the point of APOP, :mod:`xaihelpers.apop`).

**The fast path.** For the linear part of :math:`f`,
:math:`\\sum_j \\langle F_{i\\to j} v^l_i, v^k_j\\rangle R^k_j/\\lVert v^k_j\\rVert^2 =
\\langle v^l_i, [J^\\top g]_i\\rangle` with :math:`g_j = v^k_j R^k_j / \\lVert v^k_j\\rVert^2`:
one vector-Jacobian product through the affine layers between two activations, i.e.
the whole decomposition costs about one backward pass. Biases are split over the
PFVs of the receptive field in proportion to their norms (Appendix B, Eq. 11); a
batch norm that follows a convolution is treated as part of it (its bias is split
over the convolution's window, as if folded into the convolution). Max-pooling routes
through the recorded argmax (Eq. 12), residual additions split relevance between
their branches by the same inner products.

**Where conservation breaks.** An output position whose receptive-field window holds
only PFVs of zero norm (every channel 0 after a ReLU, or zero padding) has the bias as
its whole pre-activation; Eq. 11 splits the bias in proportion to norms that are all
0, so no vector of the window can carry it, and that position's relevance is dropped.
The literal reference does the same, and a test measures the loss against the
position's relevance by hand; chapter 3 reports how much relevance it costs on the
benchmark. :func:`conv_sharing_ratios` is the slow,
literal Eqs. 5-6 for one convolution, used by the tests and chapter 3.

Chapter 3 (``notebooks/03_sharing_ratio_decomposition.ipynb``) derives and tests it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from . import _checks
from .hooks import ACTIVATION_TYPES, no_inplace
from .models import default_layer

# Leaf modules whose forward is affine given the recorded max-pool indices.
AFFINE = (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Flatten, nn.Dropout,
          nn.Identity, nn.Linear, nn.ZeroPad2d, nn.ConstantPad2d)
RULES = ("contrastive", "identity", "constant")
_EPS = 1e-12


def is_activation(module: nn.Module) -> bool:
    """A module of :data:`xaihelpers.hooks.ACTIVATION_TYPES`, or one that declares ``is_activation = True``.

    The declaration lets elementwise activations written elsewhere join the
    decomposition, e.g. the smoothed ReLUs of :class:`xaihelpers.attack.SmoothReLU`.
    """
    return isinstance(module, ACTIVATION_TYPES) or getattr(module, "is_activation", False) is True


def _affine_by_name(module: nn.Module) -> bool:
    # the offline EfficientNet's TensorFlow-style padding is a zero pad
    return type(module).__name__ == "SamePad2d"


def check_supported(model: nn.Module) -> None:
    """Raise a ``ValueError`` naming every layer type SRD cannot decompose.

    Supported leaf layers: activations (:func:`is_activation`), and the affine
    layers of :data:`AFFINE` (convolution, batch norm, pooling, padding, ...).
    Attention, layer norm, softmax and other non-affine layers are not.
    """
    bad = sorted({type(m).__name__ for m in model.modules()
                  if not list(m.children()) and not is_activation(m) and not isinstance(m, AFFINE)
                  and not _affine_by_name(m)})
    if bad:
        raise ValueError(f"SRD cannot decompose layers of type {', '.join(bad)}; supported are activations "
                         f"({', '.join(t.__name__ for t in ACTIVATION_TYPES)}) and affine layers "
                         f"({', '.join(t.__name__ for t in AFFINE)})")


class _BiasShare(torch.autograd.Function):
    """Identity on ``out``; its backward adds the bias's share of relevance to ``u``.

    For each output position j the bias's relevance is :math:`\\langle b, g_j\\rangle`;
    it is split over the window of j in proportion to the norms of the input PFVs
    :math:`\\lVert u_i \\rVert` (Eq. 11), and handed to :math:`u_i` as the gradient
    :math:`\\rho_i u_i / \\lVert u_i\\rVert^2`, so that :math:`\\langle u_i, \\cdot\\rangle = \\rho_i`.
    ``value``, when given, is the same tensor as ``u`` in the graph of the image: the
    shares are computed from it, so that a map built with ``create_graph=True`` can be
    differentiated through the norms as well.
    """

    @staticmethod
    def forward(ctx, u, out, bias, kernel, stride, padding, dilation, value=None):
        ctx.save_for_backward(u if value is None else value, bias)
        ctx.geometry = (kernel, stride, padding, dilation, out.shape[-2:])
        return out.clone()

    @staticmethod
    def backward(ctx, g):
        u, bias = ctx.saved_tensors
        kernel, stride, padding, dilation, _ = ctx.geometry
        beta = torch.einsum("c,nchw->nhw", bias, g)[:, None]  # bias relevance per output position
        sq = u.pow(2).sum(1, keepdim=True)
        nz = sq > _EPS**2  # PFVs of zero norm get no share (and no 0/0 in a second derivative)
        root = torch.where(nz, sq, torch.ones_like(sq)).sqrt()
        norm = torch.where(nz, root, torch.zeros_like(root))
        ones = torch.ones(1, 1, *kernel, dtype=u.dtype, device=u.device)
        total = F.conv2d(norm, ones, stride=stride, padding=padding, dilation=dilation)
        q = torch.where(total > _EPS, beta / total.clamp(min=_EPS), torch.zeros_like(beta))
        spread = torch.nn.grad.conv2d_input(norm.shape, ones, q, stride=stride, padding=padding, dilation=dilation)
        share = torch.where(nz, spread / root, torch.zeros_like(root))
        return share * u, g, None, None, None, None, None, None


def _geometry(conv: nn.Conv2d):
    pad = conv.padding
    if isinstance(pad, str):
        raise ValueError(f"SRD needs numeric padding, got padding={pad!r} in {conv}")
    return tuple(conv.kernel_size), tuple(conv.stride), tuple(pad), tuple(conv.dilation)


def _bn_affine(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps) if bn.affine else 1 / torch.sqrt(bn.running_var + bn.eps)
    shift = (bn.bias if bn.affine else 0) - bn.running_mean * scale
    return scale, shift


@dataclass
class _Event:
    name: str
    pre: torch.Tensor | None  # pre-activation PFVs, in the graph of the earlier leaves
    leaf: torch.Tensor  # post-activation, a leaf of the graph that follows
    relevance: torch.Tensor | None = field(default=None, repr=False)


class _Tape:
    """Forward hooks that cut the graph at every activation and wrap biases.

    ``cut=False`` records the same events without cutting anything (the values in
    the graph of the image) and the input of every convolution and batch norm call;
    a cutting tape given those ``inputs`` splits biases by their norms (graph mode).
    """

    def __init__(self, model: nn.Module, marks: list[str], cut: bool = True, inputs: list | None = None) -> None:
        self.model, self.events, self.handles = model, [], []
        self.cut, self.inputs, self.calls = cut, ([] if not cut else inputs), 0
        self.leaves: dict[int, int] = {}  # id(leaf) -> event index
        self.conv_out: dict[int, tuple] = {}  # id(conv output) -> (conv input, geometry, its value)
        self.marked: dict[str, int] = {}
        self.start, self.past_start = marks[0], False  # layers after the start (the classifier) stay as they are
        names = dict(model.named_modules())
        missing = [m for m in marks if m not in names]
        if missing:
            raise ValueError(f"expected layer names of the model, got unknown {missing}")
        for name, mod in model.named_modules():
            if is_activation(mod):
                self.handles.append(mod.register_forward_hook(self._activation(name)))
            elif isinstance(mod, nn.Conv2d):
                self.handles.append(mod.register_forward_hook(self._conv))
            elif isinstance(mod, nn.BatchNorm2d):
                self.handles.append(mod.register_forward_hook(self._bn))
        for name in marks:
            self.handles.append(names[name].register_forward_hook(self._mark(name)))

    def add(self, name: str, pre, out: torch.Tensor) -> torch.Tensor:
        leaf = out.detach().requires_grad_(True) if self.cut else out
        self.leaves[id(leaf)] = len(self.events)
        self.events.append(_Event(name, pre, leaf))
        return leaf

    def _activation(self, name):
        def hook(mod, inp, out):
            return None if self.past_start else self.add(name, inp[0], out)
        return hook

    def _mark(self, name):
        def hook(mod, inp, out):
            if id(out) not in self.leaves:  # not already an activation's output
                out = self.add(name, out, out)
            self.marked[name] = self.leaves[id(out)]
            self.past_start = self.past_start or name == self.start
            return out
        return hook

    def _value(self, inp: torch.Tensor):
        """Count a convolution or batch norm call; the graph-mode value of its input, if any."""
        self.calls += 1
        if not self.cut:
            self.inputs.append(inp)
        return self.inputs[self.calls - 1] if self.cut and self.inputs is not None else None

    def _conv(self, mod, inp, out):
        value = self._value(inp[0])
        if self.past_start or not self.cut:
            return None
        geom = _geometry(mod)
        self.conv_out[id(out)] = (inp[0], geom, value)
        if mod.bias is None:
            return out
        res = _BiasShare.apply(inp[0], out, mod.bias.detach(), *geom, value)
        self.conv_out[id(res)] = (inp[0], geom, value)
        return res

    def _bn(self, mod, inp, out):
        value = self._value(inp[0])
        if self.past_start or not self.cut:
            return None
        _, shift = _bn_affine(mod)
        u, geom, value = self.conv_out.get(id(inp[0]), (inp[0], ((1, 1), (1, 1), (0, 0), (1, 1)), value))
        return _BiasShare.apply(u, out, shift.detach(), *geom, value)

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def start_relevance(logits: torch.Tensor, start: torch.Tensor, target: torch.Tensor, rule: str = "contrastive",
                    unit: str = "vector", create_graph: bool = False) -> torch.Tensor:
    """Eq. 4: class-contrastive Grad-CAM of the encoder output, negatives cut: (N, h, w).

    ``logits`` (N, K) must come from ``start`` (the encoder output (N, C, h, w), in the
    autograd graph); ``target`` (N,) the classes.

    ``rule="constant"`` gives every encoder position relevance 1 instead (the top-level
    sharing ratios set to a constant, as the paper does for the manipulation attack).
    ``unit="scalar"`` keeps one relevance per neuron, :math:`\alpha_{ch} A^{ch}_i`, with the
    negative neurons cut (the ablation's neuron-level start); shape (N, C, h, w).
    """
    if rule == "constant":
        ones = torch.ones_like(start)
        return ones / start.shape[1] if unit == "scalar" else ones[:, 0]
    score = logits.gather(1, target[:, None])[:, 0]
    if rule == "contrastive":
        score = score - logits.mean(1)
    (grad,) = torch.autograd.grad(score.sum(), start, create_graph=create_graph)
    alpha = grad.mean(dim=(2, 3), keepdim=True)
    rel = (alpha * start).clamp(min=0) if unit == "scalar" else (alpha * start).sum(1).clamp(min=0)
    return rel if create_graph else rel.detach()


UNITS = ("vector", "scalar")
VECTORS = ("pre", "post")


def explain(model: nn.Module, x: torch.Tensor, target=None, layer: str | None = "input", start: str | None = None,
            rule: str = "contrastive", unit: str = "vector", vectors: str = "pre",
            create_graph: bool = False) -> torch.Tensor:
    """SRD saliency maps: relevance of the PFVs of ``layer`` for class ``target``.

    Parameters
    ----------
    model : nn.Module
        A CNN of convolutions, batch norms, poolings, residual additions and
        activations (see :func:`check_supported`), in eval mode.
    x : torch.Tensor
        Normalised images, shape (N, 3, H, W), on the model's device.
    target : int, sequence of int or None
        Class per image; ``None`` takes the predicted class.
    layer : str or None
        Where to stop: ``"input"`` (SRD-input, (N, H, W)), a module name whose output
        is a feature map (SRD-high, e.g. ``"layer2"``), or ``None`` for the encoder
        output itself (SRD-low).
    start : str, optional
        Encoder output where Eq. 4 starts; default ``default_layer(model, "encoder")``
        (:func:`xaihelpers.models.default_layer`).
    rule : {"contrastive", "identity", "constant"}
        Eq. 4 on the target's logit minus the mean logit (the paper), or on the logit;
        ``"constant"``: relevance 1 at every encoder position, whatever the class
        (the paper's setting for the manipulation attack, Section 4.3).
    unit, vectors : str
        The paper's ablation (Appendix F): ``unit="scalar"`` shares relevance per
        neuron, :math:`z_{i\to j} / z_j` (LRP-0 through the same layers), instead of per
        PFV; ``vectors="post"`` takes the sharing ratio against the post-activation
        vector instead of the pre-activation one (no longer conservative).
    create_graph : bool
        Return maps in the graph of ``x``, so that they can be differentiated with
        respect to the input (the manipulation attack, :mod:`xaihelpers.attack`).
        The network then runs twice: once as it is, for the values, and once cut at
        its activations, whose vector-Jacobian products are taken with
        ``create_graph=True``. About three times the memory of the plain call.

    Returns
    -------
    torch.Tensor
        Maps of shape (N, h, w) at ``layer``'s resolution, on ``x``'s device;
        detached unless ``create_graph``.
    """
    _checks.image_batch(x)
    check_supported(model)
    if unit not in UNITS or vectors not in VECTORS:
        raise ValueError(f"expected unit in {UNITS} and vectors in {VECTORS}, got {unit!r} and {vectors!r}")
    if rule not in RULES:
        raise ValueError(f"expected rule in {RULES}, got {rule!r}")
    start = start or default_layer(model, "encoder")

    def eq4(logits, leaf):
        t = _checks.targets(target, x.shape[0], logits.detach())
        return start_relevance(logits, leaf, t, rule, unit, create_graph)

    return _decompose(model, x, start, start if layer is None else layer, eq4, unit, vectors, create_graph).to(x.device)


def _decompose(model, x, start, stop, relevance_fn, unit="vector", vectors="pre", create_graph=False) -> torch.Tensor:
    """Forward with the tape, relevance at ``start`` from ``relevance_fn(logits, leaf)``, then down to ``stop``.

    ``create_graph``: a first, uncut forward gives the values in the graph of ``x``
    (:class:`_Tape` with ``cut=False``); the cut tape only supplies the vector-Jacobian
    products, taken with ``create_graph=True``.
    """
    dev = _checks.model_device(model)
    if create_graph:
        x = x.to(dev) if x.requires_grad else x.detach().to(dev).requires_grad_(True)
    else:
        x = x.detach().to(dev)
    marks = [start] + ([stop] if stop not in ("input", start) else [])
    values = _Tape(model, marks, cut=False) if create_graph else None
    tape = None
    try:
        with torch.enable_grad(), no_inplace(model):
            if values is not None:
                logits_v = model(x)
                values.close()
            tape = _Tape(model, marks, inputs=values.inputs if values is not None else None)
            x_leaf = x.detach().clone().requires_grad_(True)
            tape.leaves[id(x_leaf)] = -1
            logits = model(x_leaf)
            s = tape.marked[start]
            ev = tape.events[s]
            if values is not None and len(values.events) != len(tape.events):
                raise RuntimeError("the two forward passes recorded different layers; is the model deterministic?")
            # Eq. 4 on the values in the graph of x when there are any
            ev.relevance = relevance_fn(logits, ev.leaf) if values is None else relevance_fn(logits_v, values.events[s].leaf)
            if stop == start:
                return ev.relevance.sum(1) if unit == "scalar" else ev.relevance
            stop_index = -1 if stop == "input" else tape.marked[stop]
            if stop_index > s:
                raise ValueError(f"layer {stop!r} comes after the start {start!r}")
            graph = None if values is None else (x, values.events[: s + 1])
            x_rel = _backward(tape.events[: s + 1], x_leaf, stop_index, unit, vectors, graph)
            out = x_rel if stop == "input" else tape.events[stop_index].relevance
            return out.sum(1) if unit == "scalar" else out
    finally:
        for t in (values, tape):
            if t is not None:
                t.close()


def erf(model: nn.Module, x: torch.Tensor, layer: str, position: tuple[int, int], stop: str = "input") -> torch.Tensor:
    """Effective receptive field of one PFV (Eqs. 1-3): its unit relevance decomposed down to ``stop``.

    Parameters
    ----------
    model : nn.Module
        A supported CNN in eval mode.
    x : torch.Tensor
        Normalised images (N, 3, H, W).
    layer : str
        Module whose output holds the PFV.
    position : (int, int)
        Row and column of the PFV in that layer's feature map.
    stop : str
        ``"input"`` or an earlier layer.

    Returns
    -------
    torch.Tensor
        Shape (N, h, w) at ``stop``'s resolution; sums to 1 per image (conservation),
        up to PFVs of zero norm.
    """
    _checks.image_batch(x)
    check_supported(model)

    def one_hot(logits, leaf):
        r = torch.zeros(leaf.shape[0], *leaf.shape[-2:], device=leaf.device)
        r[:, position[0], position[1]] = 1.0
        return r

    return _decompose(model, x, layer, stop, one_hot)


def _backward(events: list[_Event], x_leaf: torch.Tensor, stop_index: int, unit: str = "vector",
              vectors: str = "pre", graph: tuple | None = None) -> torch.Tensor:
    """Push relevance from the last event down to ``stop_index`` (-1: the input).

    ``graph = (x, value_events)``: take the PFVs from those (in the graph of ``x``)
    and keep every step differentiable.
    """
    leaves = [x_leaf] + [e.leaf for e in events]
    create = graph is not None
    vals = [graph[0]] + [e.leaf for e in graph[1]] if create else leaves
    shape = x_leaf.shape if unit == "scalar" else (x_leaf.shape[0], *x_leaf.shape[-2:])
    x_rel = torch.zeros(shape, device=x_leaf.device)
    for k in range(len(events) - 1, stop_index, -1):
        ev = events[k]
        if ev.relevance is None or ev.pre is None or not ev.pre.requires_grad:
            continue
        val = graph[1][k] if create else ev
        if unit == "scalar":  # per neuron: z_ij / z_j
            z = val.pre if create else val.pre.detach()
            g = torch.where(z.abs() > _EPS, ev.relevance / z.where(z.abs() > _EPS, torch.ones_like(z)), torch.zeros_like(z))
        else:
            w = val.pre if vectors == "pre" else val.leaf
            w = w if create else w.detach()
            g = w * (ev.relevance / w.pow(2).sum(1).clamp(min=_EPS))[:, None]
        sources = leaves[: k + 1]  # the input and the earlier events' leaves
        # a pooling before a residual block feeds two pre-activations: keep the graph
        grads = torch.autograd.grad(ev.pre, sources, g, allow_unused=True, retain_graph=True, create_graph=create)
        for idx, (src, gs) in enumerate(zip(vals[: k + 1], grads)):
            if gs is None:
                continue
            r = src * gs if create else (src * gs).detach()
            r = r if unit == "scalar" else r.sum(1)
            if idx == 0:
                x_rel = x_rel + r
            else:
                tgt = events[idx - 1]
                tgt.relevance = r if tgt.relevance is None else tgt.relevance + r
    return x_rel


def propagate(mu: torch.Tensor, relevance: torch.Tensor) -> torch.Tensor:
    r"""Eqs. 7-8: :math:`R^l_i = \sum_j \mu^{l\to k}_{i\to j} R^k_j`, relevance flowing down by the sharing ratios.

    ``mu`` (P_l, P_k) from :func:`conv_sharing_ratios` (row i, column j), ``relevance``
    (P_k,) of the upper layer's positions; returns (P_l,). The literal form that
    :func:`explain`'s vector-Jacobian products compute for every layer at once.
    """
    return mu @ relevance


def conv_sharing_ratios(conv: nn.Conv2d, u: torch.Tensor, bn: nn.BatchNorm2d | None = None) -> torch.Tensor:
    """Literal Eqs. 5-6 and 11 for one convolution (optionally followed by batch norm).

    Builds every partial vector :math:`\\hat v_{i\\to j} = W_{j-i} u_i + b\\,\\lVert u_i\\rVert / \\sum_{k \\in RF_j}\\lVert u_k\\rVert`
    explicitly, with loops: slow, for small layers, to check the fast path.

    Parameters
    ----------
    conv : nn.Conv2d
        Without groups.
    u : torch.Tensor
        One input, shape (C, H, W).
    bn : nn.BatchNorm2d, optional
        Batch norm after the convolution (folded into it).

    Returns
    -------
    torch.Tensor
        :math:`\\mu`, shape (H*W, H'*W'): row i, column j. An output whose window holds
        only PFVs of zero norm gets an empty column: Eq. 11 splits its bias by norms
        that are all 0, so nothing in the window carries it and its relevance is
        dropped, as in :func:`explain`.
    """
    if conv.groups != 1:
        raise ValueError("the literal reference handles convolutions without groups")
    w = conv.weight.detach()
    b = conv.bias.detach() if conv.bias is not None else torch.zeros(w.shape[0], dtype=w.dtype, device=w.device)
    if bn is not None:
        scale, shift = _bn_affine(bn)
        w, b = w * scale.detach()[:, None, None, None], b * scale.detach() + shift.detach()
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = _geometry(conv)
    c, h, wd = u.shape
    up = F.pad(u, (pw, pw, ph, ph))
    ho, wo = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    mu = torch.zeros(h * wd, ho * wo, dtype=u.dtype, device=u.device)
    for oy in range(ho):
        for ox in range(wo):
            parts, where = [], []
            for ky in range(kh):
                for kx in range(kw):
                    iy, ix = oy * sh + ky * dh - ph, ox * sw + kx * dw - pw
                    vec = up[:, iy + ph, ix + pw]
                    parts.append((w[:, :, ky, kx] @ vec, vec.norm()))
                    where.append((iy, ix))
            norms = sum(n for _, n in parts)
            vecs = [p + (b * n / norms if norms > 0 else 0) for p, n in parts]
            v = sum(vecs)
            if norms == 0 or v @ v == 0:
                continue  # a window of zero-norm PFVs: no partial vector can carry the bias (see below)
            for (iy, ix), pv in zip(where, vecs):
                if 0 <= iy < h and 0 <= ix < wd:
                    mu[iy * wd + ix, oy * wo + ox] += (pv @ v) / (v @ v)
    return mu
