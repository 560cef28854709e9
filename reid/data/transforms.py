"""Train / test transforms on uint8 (3, H, W) tensors, as stored by `reid.data.dataset.ImageCache`.

Train (paper Section 2.1, "TA" of Table 3): resize -> pad + random crop -> horizontal flip ->
TrivialAugmentWide -> float -> ImageNet normalisation -> RandomErasing(p=0.5).
`TrainTransform.with_gray` also returns the grayscale copy of the *same* augmented view
(3 identical channels, then the same per-channel ImageNet normalisation as the colour view); random erasing is drawn independently for the two
copies, so the grayscale copy is not a pixel-exact twin (see docs/deviations.md).
"""

from __future__ import annotations

import torch
from torchvision import transforms as T
from torchvision.transforms import functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _resize(height: int, width: int) -> T.Resize:
    return T.Resize((height, width), interpolation=T.InterpolationMode.BILINEAR, antialias=True)


class TrainTransform:
    """Callable: uint8 (3, H, W) -> float (3, height, width). `with_gray(img)` -> (img, gray)."""

    def __init__(self, height: int = 288, width: int = 144, trivial_augment: bool = True,
                 random_erasing: float = 0.5, pad: int = 10, flip: float = 0.5):
        self.size = (height, width)
        steps: list = [_resize(height, width)]
        if pad > 0:
            steps.append(T.RandomCrop((height, width), padding=pad))
        if flip > 0:
            steps.append(T.RandomHorizontalFlip(flip))
        if trivial_augment:
            steps.append(T.TrivialAugmentWide())  # works on uint8 tensors
        self.augment = T.Compose(steps)  # uint8 -> uint8, all the randomness of the view
        self.normalize = T.Normalize(IMAGENET_MEAN, IMAGENET_STD)
        self.erase = T.RandomErasing(p=random_erasing, value=0) if random_erasing > 0 else None

    def finish(self, view: torch.Tensor) -> torch.Tensor:
        """uint8 view -> normalised float, then random erasing (on the normalised tensor, as usual)."""
        out = self.normalize(view.float().div_(255))
        return self.erase(out) if self.erase is not None else out

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        return self.finish(self.augment(img))

    def with_gray(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The augmented view and its grayscale copy (3 identical channels)."""
        view = self.augment(img)
        return self.finish(view), self.finish(F.rgb_to_grayscale(view, num_output_channels=3))

    def __repr__(self) -> str:
        return f"TrainTransform(augment={self.augment}, erase={self.erase})"


def build_train_transform(height: int = 288, width: int = 144, trivial_augment: bool = True,
                          random_erasing: float = 0.5, pad: int = 10, flip: float = 0.5) -> TrainTransform:
    """The training augmentation; every step can be switched off for ablations (0 / False)."""
    return TrainTransform(height, width, trivial_augment, random_erasing, pad, flip)


def build_test_transform(height: int = 288, width: int = 144) -> T.Compose:
    """uint8 (3, H, W) -> resized, normalised float (3, height, width); deterministic."""
    return T.Compose([
        _resize(height, width),
        T.ConvertImageDtype(torch.float32),
        T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])
