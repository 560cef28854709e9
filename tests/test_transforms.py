"""Train / test transforms: shapes, dtypes, the grayscale copy, and that every switch really switches."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms import functional as F

from reid.data import build_test_transform, build_train_transform
from reid.data.transforms import IMAGENET_MEAN, IMAGENET_STD


@pytest.fixture
def image() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (3, 128, 64), dtype=torch.uint8, generator=g)


def normalise(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x.float() / 255, IMAGENET_MEAN, IMAGENET_STD)


def test_train_output_shape_and_dtype(image):
    out = build_train_transform(96, 48)(image)
    assert out.shape == (3, 96, 48) and out.dtype == torch.float32
    img, gray = build_train_transform()(image), build_train_transform().with_gray(image)[1]
    assert img.shape == gray.shape == (3, 288, 144)


def test_test_transform_is_deterministic_resize_and_normalise(image):
    tf = build_test_transform(256, 128)
    out = tf(image)
    assert out.shape == (3, 256, 128) and out.dtype == torch.float32
    assert torch.equal(out, tf(image))
    same_size = build_test_transform(128, 64)(image)
    assert torch.allclose(same_size, normalise(image), atol=1e-6)


def test_everything_off_is_the_test_transform(image):
    train = build_train_transform(128, 64, trivial_augment=False, random_erasing=0, pad=0, flip=0)
    assert torch.equal(train(image), build_test_transform(128, 64)(image))


def test_trivial_augment_false_really_turns_it_off(image):
    # Geometry fixed (no pad, flip always): the only randomness left would be TrivialAugmentWide.
    off = build_train_transform(128, 64, trivial_augment=False, random_erasing=0, pad=0, flip=1.0)
    flipped = normalise(F.hflip(image))
    torch.manual_seed(0)
    assert all(torch.equal(off(image), flipped) for _ in range(20))
    on = build_train_transform(128, 64, trivial_augment=True, random_erasing=0, pad=0, flip=1.0)
    assert any(not torch.equal(on(image), flipped) for _ in range(20))
    assert "TrivialAugment" in repr(on) and "TrivialAugment" not in repr(off)


def test_random_erasing_probability(image):
    always = build_train_transform(128, 64, trivial_augment=False, random_erasing=1.0, pad=0, flip=0)
    clean = normalise(image)
    torch.manual_seed(1)
    for _ in range(5):
        out = always(image)
        erased = (out == 0).all(dim=0) & (clean != 0).any(dim=0)
        assert erased.sum() > 0  # a rectangle was zeroed every time


def test_pad_and_crop_shift_the_image(image):
    shifted = build_train_transform(128, 64, trivial_augment=False, random_erasing=0, pad=10, flip=0)
    torch.manual_seed(0)
    outs = [shifted(image) for _ in range(10)]
    assert any(not torch.equal(o, normalise(image)) for o in outs)


def test_gray_copy_is_the_grayscale_of_the_same_view(image):
    tf = build_train_transform(128, 64, trivial_augment=True, random_erasing=0, pad=10, flip=0.5)
    for seed in range(5):
        torch.manual_seed(seed)
        img, gray = tf.with_gray(image)
        mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
        raw = gray * std + mean  # 3 identical channels before the (per-channel) normalisation
        assert torch.allclose(raw[0], raw[1], atol=1e-5) and torch.allclose(raw[1], raw[2], atol=1e-5)
        # Undo the normalisation of the colour view, take its grayscale: that is the gray copy.
        view = torch.round((img * std + mean) * 255).clamp(0, 255).to(torch.uint8)
        expected = normalise(F.rgb_to_grayscale(view, num_output_channels=3))
        assert torch.allclose(gray, expected, atol=1e-5)


def test_reid_trivial_augment_space_is_bounded():
    from reid.data.transforms import REID_TA_OPS, ReIDTrivialAugment, apply_op

    assert not {"Solarize", "Posterize", "Equalize", "ShearY"} & set(REID_TA_OPS)
    assert REID_TA_OPS["Rotate"][0] <= 15 and REID_TA_OPS["ShearX"][0] <= 0.15
    assert REID_TA_OPS["TranslateX"][0] <= 0.15 and REID_TA_OPS["TranslateY"][0] <= 0.15
    assert all(bound <= 1.0 for name, (bound, _) in REID_TA_OPS.items() if name != "Rotate")
    ta = ReIDTrivialAugment()
    torch.manual_seed(0)
    draws = [ta.draw() for _ in range(2000)]
    assert {name for name, _ in draws} == set(REID_TA_OPS)
    assert all(abs(m) <= REID_TA_OPS[name][0] + 1e-9 for name, m in draws)
    assert any(m < 0 for _, m in draws)
    img = torch.randint(0, 256, (3, 96, 48), dtype=torch.uint8)
    for name, (bound, _) in REID_TA_OPS.items():
        for magnitude in (bound, -bound):
            out = apply_op(img, name, magnitude)
            assert out.shape == img.shape and out.dtype == torch.uint8
    gray = img[:1].expand(3, -1, -1)
    for name, (bound, _) in REID_TA_OPS.items():  # no op invents colour in a grey (IR) image
        out = apply_op(gray.contiguous(), name, bound)
        assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])


def test_ta_space_switch():
    from torchvision.transforms import TrivialAugmentWide

    from reid.data.transforms import ReIDTrivialAugment
    from reid.utils.errors import UserError

    reid_t = build_train_transform(96, 48, ta_space="reid")
    wide_t = build_train_transform(96, 48, ta_space="wide")
    assert any(isinstance(t, ReIDTrivialAugment) for t in reid_t.augment.transforms)
    assert any(isinstance(t, TrivialAugmentWide) for t in wide_t.augment.transforms)
    assert reid_t(torch.randint(0, 256, (3, 96, 48), dtype=torch.uint8)).shape == (3, 96, 48)
    with pytest.raises(UserError, match="ta_space"):
        build_train_transform(96, 48, ta_space="huge")
