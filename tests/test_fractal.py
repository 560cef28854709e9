"""FractalDB-style images (reid.data.fractal): byte-identical whatever the order, categories distinct,
instances of one category alike, the filling-rate filter."""

from __future__ import annotations

import numpy as np
import pytest

from reid.data import fractal
from reid.data.fractal import IFS, fill_rate, fractal_image, fractal_set, ifs_probabilities, sample_category


def test_images_are_the_same_bytes_in_any_order():
    images, labels = fractal_set(seed=0, classes=3, images_per_class=2, height=96, width=48)
    assert images.shape == (6, 96, 48, 3) and images.dtype == np.uint8
    assert labels.tolist() == [0, 0, 1, 1, 2, 2]
    # Asked for alone, last first: the same bytes as inside the set.
    assert np.array_equal(fractal_image(0, 2, 1, 96, 48), images[5])
    assert np.array_equal(fractal_image(0, 0, 0, 96, 48), images[0])
    held, _ = fractal_set(seed=0, classes=3, images_per_class=1, height=96, width=48, first_instance=2)
    assert not any(np.array_equal(h, i) for h in held for i in images)  # held-out instances are new images
    assert not np.array_equal(fractal_image(1, 0, 0, 96, 48), images[0])  # another seed, another set
    assert all(image.max() > 0 and (image == 0).any() for image in images)  # drawn points on black


def test_categories_differ_and_instances_of_one_category_are_closer_than_across():
    """The shape (visit mask, rendering variations left out) of two instances of one category overlaps more
    than that of instances of different categories: what makes the labels learnable."""
    def mask(category: int, instance: int) -> np.ndarray:
        rng = np.random.default_rng([0, 9, category, instance])
        points = fractal.chaos_game(fractal.perturb(sample_category(0, category), rng), rng)
        return fractal.rasterise(points, 48, 48, 0, 0, 48, 48) > 0

    def iou(a, b) -> float:
        return (a & b).sum() / (a | b).sum()

    categories = range(6)
    assert len({sample_category(0, c).maps.tobytes() for c in categories}) == 6
    masks = {c: (mask(c, 0), mask(c, 1)) for c in categories}
    within = [iou(*masks[c]) for c in categories]
    across = [iou(masks[a][0], masks[b][1]) for a in categories for b in categories if a != b]
    assert np.mean(within) > np.mean(across) + 0.15, (within, across)
    assert sum(w > max(iou(masks[c][0], masks[o][1]) for o in categories if o != c)
               for c, w in zip(categories, within)) >= 5


def test_fill_rate_rejects_a_line_and_categories_pass_it(monkeypatch):
    rng = np.random.default_rng(0)
    # Both maps squash y to 0: the attractor is a segment, it fills almost nothing of its frame.
    line = np.array([[[0.5, 0.0, 0.0], [0.0, 0.0, 0.0]], [[0.5, 0.0, 0.5], [0.0, 0.0, 0.0]]])
    assert fill_rate(IFS(line, ifs_probabilities(line)), rng) < fractal.FILL_THRESHOLD
    # The Sierpinski triangle (three halvings) fills about a third or more of its frame.
    sierpinski = np.array([[[0.5, 0, 0], [0, 0.5, 0]], [[0.5, 0, 0.5], [0, 0.5, 0]], [[0.5, 0, 0.25], [0, 0.5, 0.5]]])
    assert fill_rate(IFS(sierpinski, ifs_probabilities(sierpinski)), rng) > fractal.FILL_THRESHOLD
    for c in range(4):
        ifs = sample_category(0, c)
        assert fractal.contractive(ifs.maps) and np.isclose(ifs.probs.sum(), 1)
        assert fill_rate(ifs, np.random.default_rng(c)) > fractal.FILL_THRESHOLD - 0.05  # other points, ~same
    monkeypatch.setattr(fractal, "MAX_ATTEMPTS", 3)
    with pytest.raises(RuntimeError, match="filling rate 1.01"):
        sample_category(0, 0, threshold=1.01)
