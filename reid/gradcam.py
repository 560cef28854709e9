"""Attention maps (the paper's Fig. 3) with Grad-CAM, from the `grad-cam` package.

Grad-CAM explains a *score*. A classifier has one per class; a re-ID model at test time outputs
an embedding, and what matters is how similar two embeddings are. So the score explained here is
the cosine similarity between an image's embedding and a reference embedding that the caller gives,
one per image. Notebook 07 pairs each IR query with one RGB gallery image of the same identity and
explains each against the other's embedding, so the map shows which regions make the *cross-modal
match*.

The maps are taken at each branch's CSA output (already a (B, C, h, w) token map) or, with
`layer="tokens"`, at the branch's last transformer block (tokens reshaped to the non-square grid:
24x12 for patch 12, 18x9 for patch 16 at 288x144). See `ReIDModel.gradcam_targets`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import show_cam_on_image

from reid.data.transforms import IMAGENET_MEAN, IMAGENET_STD


class EmbeddingSimilarityTarget:
    """Grad-CAM target: cosine similarity between the model's embedding and a fixed reference."""

    def __init__(self, reference: torch.Tensor) -> None:
        self.reference = F.normalize(reference.detach().flatten(), dim=0)

    def __call__(self, embedding: torch.Tensor) -> torch.Tensor:
        return F.normalize(embedding.flatten(), dim=0) @ self.reference.to(embedding.device)


def attention_maps(model, images: torch.Tensor, references: torch.Tensor, branch: int = 0,
                   layer: str = "csa") -> np.ndarray:
    """Grad-CAM maps (N, H, W) in [0, 1] at the input resolution, one per image.

    `images` are normalised model inputs (N, 3, H, W); `references` (N, D) the embedding each image's
    similarity is explained against. The model is put in eval mode (its forward returns embeddings).
    """
    if images.shape[0] != references.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {references.shape[0]} reference embeddings")
    model.eval()
    layers, reshape_transform = model.gradcam_targets(branch, layer)
    targets = [EmbeddingSimilarityTarget(r) for r in references]
    with GradCAM(model=model, target_layers=layers, reshape_transform=reshape_transform) as cam:
        return cam(input_tensor=images, targets=targets)


def denormalize(image: torch.Tensor) -> np.ndarray:
    """A normalised (3, H, W) tensor back to a float (H, W, 3) image in [0, 1] for display."""
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (image.detach().cpu() * std + mean).clamp(0, 1).permute(1, 2, 0).numpy()


def overlay(image: torch.Tensor, cam: np.ndarray, strength: float = 0.5) -> np.ndarray:
    """Heat map `cam` (H, W) over a normalised (3, H, W) image tensor, as uint8 (H, W, 3)."""
    return show_cam_on_image(denormalize(image).astype(np.float32), cam, use_rgb=True,
                             image_weight=1.0 - strength)
