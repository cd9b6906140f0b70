"""Look inside a network: record the activations, and optionally the gradients,
of named layers during a forward (and backward) pass.

Chapter 0 (``notebooks/00_getting_started.ipynb``) uses it to show feature maps
and to compute Grad-CAM by hand. It also holds the one list of activation module
types (:data:`ACTIVATION_TYPES`, :data:`RELU_TYPES`) every method that looks for
activations uses.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
from torch import nn

#: the elementwise activation modules the book knows, one list for every module that looks for them
#: (SRD's decomposable activations, Activation Matching's matched layers, ConvAD's pointwise layers)
ACTIVATION_TYPES = (nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.ELU, nn.LeakyReLU, nn.SiLU, nn.GELU, nn.Tanh, nn.Sigmoid,
                    nn.Softplus, nn.Mish, nn.Hardswish, nn.Hardsigmoid)
#: the piecewise-linear gates among them (APOP's activation patterns, the attack's smoothed ReLUs)
RELU_TYPES = (nn.ReLU, nn.ReLU6)


class Recording:
    """What :func:`record` collects; filled during the passes made inside the ``with`` block.

    Attributes
    ----------
    activations : dict of str to torch.Tensor
        Output of each layer in the last forward pass, e.g. (N, C, h, w) for a convolution.
    gradients : dict of str to torch.Tensor
        Gradient of the backpropagated quantity with respect to each layer's output,
        same shapes as the activations; empty unless ``gradients=True``.
    """

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        self.activations: dict[str, torch.Tensor] = {}
        self.gradients: dict[str, torch.Tensor] = {}

    def __repr__(self) -> str:
        shapes = {k: tuple(v.shape) for k, v in self.activations.items()}
        return f"Recording(activations={shapes}, gradients={sorted(self.gradients)})"


def layer_names(model: nn.Module, types: tuple[type, ...] | None = None) -> list[str]:
    """Names of the model's submodules, optionally only those of the given types.

    Parameters
    ----------
    model : nn.Module
        Any PyTorch model.
    types : tuple of type, optional
        Keep only modules that are instances of these classes (e.g. ``(nn.Conv2d,)``).

    Returns
    -------
    list of str
        Names accepted by :func:`record` and ``model.get_submodule``.
    """
    return [n for n, m in model.named_modules() if n and (types is None or isinstance(m, types))]


@contextmanager
def record(
    model: nn.Module,
    layers: str | Sequence[str],
    gradients: bool = False,
    detach: bool = True,
) -> Iterator[Recording]:
    """Record the outputs (and gradients) of named layers while the block runs.

    The hooks are removed when the block ends, also when it raises.

    Parameters
    ----------
    model : nn.Module
        The network.
    layers : str or sequence of str
        Layer names as in ``model.named_modules()``, e.g. ``"layer4"`` or ``"_blocks.3"``.
    gradients : bool
        Also record the gradient with respect to each output during ``backward``.
    detach : bool
        Store detached activations (default). ``False`` keeps them in the graph so that
        they can be differentiated further.

    Yields
    ------
    Recording
        Its ``activations`` and ``gradients`` dicts fill as the passes run.

    Examples
    --------
    >>> with record(model, ["layer4"], gradients=True) as rec:
    ...     model(x)[0, 281].backward()
    >>> rec.activations["layer4"].shape, rec.gradients["layer4"].shape
    """
    if isinstance(layers, str):
        layers = [layers]
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected an nn.Module, got {type(model).__name__}")
    available = dict(model.named_modules())
    missing = [n for n in layers if n not in available]
    if missing:
        sample = [n for n in available if n][:12]
        raise ValueError(f"expected layer names of the model, got unknown {missing}; some valid names: {sample}")
    rec = Recording(layers)
    handles = []

    def make_hook(name: str):
        def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
            if not isinstance(output, torch.Tensor):
                raise TypeError(f"layer {name!r} returned {type(output).__name__}; only tensor outputs can be recorded")
            rec.activations[name] = output.detach() if detach else output
            if gradients and output.requires_grad:
                def save_grad(grad: torch.Tensor) -> None:
                    rec.gradients[name] = grad.detach()

                output.register_hook(save_grad)

        return hook

    try:
        for name in layers:
            handles.append(available[name].register_forward_hook(make_hook(name)))
        yield rec
    finally:
        for h in handles:
            h.remove()


@contextmanager
def frozen_weights(model: nn.Module) -> Iterator[nn.Module]:
    """Stop gradients to the model's parameters inside the block; restore the flags after.

    For explainers that optimise an input-side variable (a mask, channel weights) and
    must neither compute nor leave gradients on the network's weights.
    """
    state = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in zip(model.parameters(), state):
            p.requires_grad_(flag)


@contextmanager
def no_inplace(model: nn.Module) -> Iterator[nn.Module]:
    """Switch off ``inplace`` on every module that has it (e.g. torchvision's ReLUs) inside the block.

    Hooks that need a layer's input after the layer ran (pre-activations, recorded
    patterns) would otherwise see it overwritten.
    """
    changed = [m for m in model.modules() if getattr(m, "inplace", False)]
    for m in changed:
        m.inplace = False
    try:
        yield model
    finally:
        for m in changed:
            m.inplace = True
