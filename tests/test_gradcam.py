"""Grad-CAM with an embedding-similarity target on each branch of a small model."""

import numpy as np
import pytest
import torch

from reid.models import ModelConfig, build_model
from reid.tools.gradcam import EmbeddingSimilarityTarget, attention_maps, overlay


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(ModelConfig(preset="tiny", img_size=(96, 48)), num_classes=5).eval()


def test_similarity_target_is_cosine():
    ref = torch.tensor([1.0, 0.0])
    assert EmbeddingSimilarityTarget(ref)(torch.tensor([3.0, 0.0])).item() == pytest.approx(1.0)
    assert EmbeddingSimilarityTarget(ref)(torch.tensor([0.0, 2.0])).item() == pytest.approx(0.0)


@pytest.mark.parametrize("branch,layer", [(0, "csa"), (1, "csa"), (0, "tokens"), (1, "tokens")])
def test_maps_have_input_size_and_depend_on_the_image(model, branch, layer):
    torch.manual_seed(1)
    images = torch.randn(2, 3, 96, 48)
    with torch.no_grad():
        refs = model(images.flip(0))  # explain each image against the other one's embedding
    maps = attention_maps(model, images, refs, branch=branch, layer=layer)
    assert maps.shape == (2, 96, 48)
    assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1 + 1e-6
    assert not np.allclose(maps[0], maps[1])
    out = overlay(images[0], maps[0])
    assert out.shape == (96, 48, 3) and out.dtype == np.uint8


def test_mismatched_references_are_refused(model):
    with pytest.raises(ValueError, match="2 images but 1 reference"):
        attention_maps(model, torch.randn(2, 3, 96, 48), torch.randn(1, model.feature_dim))
