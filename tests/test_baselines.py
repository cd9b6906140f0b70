import numpy as np
import pytest
import torch

import xaihelpers as xh


@pytest.fixture(scope="module")
def batch(lite0):
    photos = xh.sample_images(["coffee", "chelsea"])
    return xh.data.to_batch(photos.values(), lite0.preprocess)


def test_gradient_matches_captum_saliency(lite0, batch):
    from captum.attr import Saliency

    ref = Saliency(lite0.model).attribute(batch.clone().requires_grad_(True), target=[967, 285], abs=True).amax(1)
    mine = xh.baselines.gradient(lite0.model, batch, [967, 285])
    assert mine.shape == (2, 224, 224)
    assert torch.allclose(mine, ref, rtol=1e-4, atol=1e-7)


def test_grad_cam_matches_pytorch_grad_cam(lite0, batch):
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    with GradCAM(model=lite0.model, target_layers=[lite0.model._act_head]) as cam:
        ref = cam(input_tensor=batch.clone(), targets=[ClassifierOutputTarget(967), ClassifierOutputTarget(285)])
    mine = xh.baselines.grad_cam(lite0.model, batch, [967, 285]).numpy()
    lo, hi = mine.min(axis=(1, 2), keepdims=True), mine.max(axis=(1, 2), keepdims=True)
    mine = (mine - lo) / (hi - lo)  # pytorch-grad-cam min-max scales each map
    assert mine.shape == ref.shape == (2, 224, 224)
    assert np.abs(mine - ref).max() < 1e-3


def test_target_none_explains_the_prediction(lite0, batch):
    a = xh.baselines.grad_cam(lite0.model, batch, None)
    pred = lite0.model(batch).argmax(1).tolist()
    b = xh.baselines.grad_cam(lite0.model, batch, pred)
    assert torch.allclose(a, b)


def test_grad_cam_is_class_sensitive(lite0, batch):
    espresso = xh.baselines.grad_cam(lite0.model, batch[:1], 967)
    cat = xh.baselines.grad_cam(lite0.model, batch[:1], 285)
    assert not torch.allclose(espresso, cat)


def test_bad_inputs_raise(lite0, batch):
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        xh.baselines.gradient(lite0.model, batch[0], 1)
    with pytest.raises(TypeError):
        xh.baselines.gradient(lite0.model, batch.numpy(), 1)
    with pytest.raises(ValueError, match="one target per image"):
        xh.baselines.grad_cam(lite0.model, batch, [1, 2, 3])
    with pytest.raises(ValueError, match=r"\[0, 1000\)"):
        xh.baselines.gradient(lite0.model, batch, 1000)
