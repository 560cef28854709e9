"""Train / test transforms on uint8 (3, H, W) tensors, as stored by `reid.data.dataset.ImageCache`.

Train (paper Section 2.1, "TA" of Table 3): resize -> pad + random crop -> horizontal flip ->
TrivialAugment -> float -> ImageNet normalisation -> RandomErasing(p=0.5).

TrivialAugment's op space (`ta_space`): "reid" (default) is `ReIDTrivialAugment`, TrivialAugment's
sampling rule (one op, a uniformly drawn magnitude) over a space sized for aligned pedestrian crops;
"wide" is torchvision's `TrivialAugmentWide` as is (rotations up to 135 degrees, shear 0.99, solarize,
posterize), the paper's literal "TA". See docs/deviations.md.
`TrainTransform.with_gray` also returns the grayscale copy of the *same* augmented view
(3 identical channels, then the same per-channel ImageNet normalisation as the colour view); random erasing is drawn independently for the two
copies, so the grayscale copy is not a pixel-exact twin (see docs/deviations.md).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torchvision import transforms as T
from torchvision.transforms import functional as F

from reid.utils.errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TA_SPACES = ("reid", "wide")

# name -> (largest magnitude, signed). Magnitudes sized for 2:1 pedestrian crops: a person stays upright
# and inside the frame; the paper's own list (crop, flip, rotation, sharpening, contrast) is covered, crop
# and flip by the steps before TrivialAugment. Photometric ops act on every channel alike, so they never
# create colour an IR image lacks. Not included: solarize, posterize (they invert / quantise the
# brightness order an IR image is matched on), large rotations and shears.
REID_TA_OPS: dict[str, tuple[float, bool]] = {
    "Identity": (0.0, False),
    "Brightness": (0.4, True),  # factor 1 +- 0.4
    "Contrast": (0.4, True),
    "Color": (0.4, True),  # saturation; an IR image (grey) is unchanged by it
    "Sharpness": (0.9, True),
    "Rotate": (10.0, True),  # degrees
    "ShearX": (0.1, True),  # shear angle atan(0.1) ~ 5.7 degrees
    "TranslateX": (0.1, True),  # fraction of the width
    "TranslateY": (0.1, True),  # fraction of the height
    "AutoContrast": (0.0, False),
}


def apply_op(img: torch.Tensor, name: str, magnitude: float) -> torch.Tensor:
    """One augmentation on a uint8 (3, H, W) tensor, through torchvision's functional API."""
    if name == "Identity":
        return img
    if name == "Brightness":
        return F.adjust_brightness(img, 1.0 + magnitude)
    if name == "Contrast":
        return F.adjust_contrast(img, 1.0 + magnitude)
    if name == "Color":
        return F.adjust_saturation(img, 1.0 + magnitude)
    if name == "Sharpness":
        return F.adjust_sharpness(img, 1.0 + magnitude)
    if name == "AutoContrast":
        return F.autocontrast(img)
    if name == "Rotate":
        return F.rotate(img, magnitude, interpolation=T.InterpolationMode.BILINEAR)
    if name == "ShearX":
        return F.affine(img, angle=0.0, translate=[0, 0], scale=1.0, shear=[math.degrees(math.atan(magnitude)), 0.0],
                        interpolation=T.InterpolationMode.BILINEAR, center=[0, 0])
    if name == "TranslateX":
        return F.affine(img, angle=0.0, translate=[round(magnitude * img.shape[-1]), 0], scale=1.0,
                        shear=[0.0, 0.0], interpolation=T.InterpolationMode.NEAREST)
    if name == "TranslateY":
        return F.affine(img, angle=0.0, translate=[0, round(magnitude * img.shape[-2])], scale=1.0,
                        shear=[0.0, 0.0], interpolation=T.InterpolationMode.NEAREST)
    raise ValueError(f"unknown augmentation op {name!r}")


class ReIDTrivialAugment(torch.nn.Module):
    """TrivialAugment (Mueller & Hutter 2021): per image one op drawn uniformly from `ops`, a magnitude
    drawn uniformly from `num_bins` bins up to the op's bound, a random sign for signed ops. Same rule as
    `torchvision.transforms.TrivialAugmentWide`, with `REID_TA_OPS`' re-ID-sized bounds."""

    def __init__(self, ops: dict[str, tuple[float, bool]] | None = None, num_bins: int = 31):
        super().__init__()
        self.ops = dict(REID_TA_OPS if ops is None else ops)
        self.num_bins = num_bins

    def draw(self) -> tuple[str, float]:
        """(op name, signed magnitude) from torch's global RNG (seeded per epoch by the engine)."""
        names = list(self.ops)
        name = names[int(torch.randint(len(names), (1,)))]
        bound, signed = self.ops[name]
        magnitude = bound * float(torch.randint(self.num_bins, (1,))) / (self.num_bins - 1)
        if signed and torch.randint(2, (1,)):
            magnitude = -magnitude
        return name, magnitude

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return apply_op(img, *self.draw())

    def __repr__(self) -> str:
        return f"ReIDTrivialAugment(ops={list(self.ops)}, num_bins={self.num_bins})"


def _resize(height: int, width: int) -> T.Resize:
    return T.Resize((height, width), interpolation=T.InterpolationMode.BILINEAR, antialias=True)


class TrainTransform:
    """Callable: uint8 (3, H, W) -> float (3, height, width). `with_gray(img)` -> (img, gray)."""

    def __init__(self, height: int = 288, width: int = 144, trivial_augment: bool = True,
                 random_erasing: float = 0.5, pad: int = 10, flip: float = 0.5, ta_space: str = "reid"):
        if ta_space not in TA_SPACES:
            raise UserError(f"ta_space={ta_space!r} is not valid; expected one of {list(TA_SPACES)}")
        self.size = (height, width)
        steps: list = [_resize(height, width)]
        if pad > 0:
            steps.append(T.RandomCrop((height, width), padding=pad))
        if flip > 0:
            steps.append(T.RandomHorizontalFlip(flip))
        if trivial_augment:
            # both work on uint8 tensors
            steps.append(ReIDTrivialAugment() if ta_space == "reid" else T.TrivialAugmentWide())
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
                          random_erasing: float = 0.5, pad: int = 10, flip: float = 0.5,
                          ta_space: str = "reid") -> TrainTransform:
    """The training augmentation; every step can be switched off for ablations (0 / False)."""
    return TrainTransform(height, width, trivial_augment, random_erasing, pad, flip, ta_space)


def build_test_transform(height: int = 288, width: int = 144) -> T.Compose:
    """uint8 (3, H, W) -> resized, normalised float (3, height, width); deterministic."""
    return T.Compose([
        _resize(height, width),
        T.ConvertImageDtype(torch.float32),
        T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def denormalize(image: torch.Tensor) -> np.ndarray:
    """A normalised (3, H, W) tensor back to a float (H, W, 3) image in [0, 1] for display."""
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (image.detach().cpu() * std + mean).clamp(0, 1).permute(1, 2, 0).numpy()
