"""FractalDB-style images: a generic classification task drawn from formulas, for pretraining the backbone.

Formula-driven supervised learning (Kataoka et al., "Pre-training without Natural Images", ACCV 2020)
labels images by the formula that drew them: each *category* is an iterated function system (IFS), a
few random 2-D affine maps w_i(p) = A_i p + b_i (we keep contractive ones), and an image of it is the set of points the "chaos game"
visits (start anywhere, repeatedly apply a map picked at random, with probability proportional to
|det A_i|). Categories whose points fill too little of their frame (a line, a dot) are rejected by a
*filling rate* threshold; *instances* of a category vary one map parameter by a small weight and the
rendering (flip, colour, placement). Nakashima et al. ("Can Vision Transformers Learn without Natural
Images?", AAAI 2022) pretrained ViTs on such images. The pictures contain no person and no natural image,
so nothing in them can leak the synthetic re-ID stand-in's identities (reid/data/synthetic.py).

Everything is drawn from `numpy.random.default_rng([seed, stream, category, instance or attempt])`, so an image is the
same bytes whatever else was drawn before it, in any order, in any process. Our sizes and thresholds are
our choices for a CPU-sized model (docs/pretraining.md says why), not the papers' FractalDB-1k settings.

    images, labels = fractal_set(seed=0, classes=4, images_per_class=3, height=96, width=48)
    # images: uint8 (12, 96, 48, 3), labels: int64 (12,), category-major
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Streams of random draws, so a category's search and an instance's rendering never share numbers.
CATEGORY_STREAM, INSTANCE_STREAM = 0, 1

MAPS = (2, 4)  # an IFS has 2..4 affine maps (inclusive): few maps give varied, recognisable shapes
FILL_SIZE = 64  # the square frame the filling rate is measured in
FILL_THRESHOLD = 0.2  # categories filling less of their frame are rejected
MAX_ATTEMPTS = 1000  # draws per category before giving up (in practice a few dozen suffice)
CHAINS, BURN_IN, STEPS = 256, 20, 60  # chaos game: independent walkers, steps dropped, steps kept
WEIGHT_RANGE = (0.8, 1.2)  # the instance weight on one map parameter
SCALE_RANGE = (0.7, 1.0)  # each side of the box a fractal is drawn into, as a share of the image's side


@dataclass(frozen=True)
class IFS:
    """An iterated function system: maps (n, 2, 3) = [A_i | b_i] and their probabilities (n,)."""

    maps: np.ndarray
    probs: np.ndarray


def ifs_probabilities(maps: np.ndarray) -> np.ndarray:
    """Each map's probability in the chaos game: proportional to the area it keeps, |det A_i|, so that
    thin maps are not over-visited (the rule of Barnsley's random iteration, used by FractalDB)."""
    dets = np.abs(maps[:, 0, 0] * maps[:, 1, 1] - maps[:, 0, 1] * maps[:, 1, 0])
    dets = np.maximum(dets, 1e-6)  # a singular map still gets a few points
    return dets / dets.sum()


def chaos_game(ifs: IFS, rng: np.random.Generator) -> np.ndarray:
    """(CHAINS * STEPS, 2) points of the attractor: CHAINS walkers run side by side (vectorised), each
    starting at a random point, their first BURN_IN steps dropped (not yet on the attractor)."""
    picks = rng.choice(len(ifs.probs), size=(BURN_IN + STEPS, CHAINS), p=ifs.probs)
    points = rng.uniform(-1, 1, size=(CHAINS, 2))
    linear, shift = ifs.maps[:, :, :2], ifs.maps[:, :, 2]
    kept = []
    for step, pick in enumerate(picks):
        points = np.einsum("cij,cj->ci", linear[pick], points) + shift[pick]
        # A category's maps contract, but an instance's weight (up to x1.2) can make one expand a little and
        # throw a walker far away: clipping keeps the numbers finite, `frame`'s percentiles ignore outliers.
        points = np.clip(points, -1e6, 1e6)
        if step >= BURN_IN:
            kept.append(points)
    return np.concatenate(kept)


def frame(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The box (low, size) holding the attractor: 1st to 99th percentile per axis, so a few escaped walkers
    do not shrink the picture to a dot."""
    low, high = np.percentile(points, [1, 99], axis=0)
    return low, np.maximum(high - low, 1e-9)


def rasterise(points: np.ndarray, height: int, width: int, top: float, left: float, box_h: float, box_w: float,
              flip_x: bool = False, flip_y: bool = False) -> np.ndarray:
    """Visit counts (height, width) of the points drawn to fill the box (top, left, box_h, box_w) of the image.
    Each axis is scaled on its own: a stretched attractor is still an IFS attractor (that of the stretched
    maps), and a 96x48 person-shaped image then has no empty half."""
    low, size = frame(points)
    unit = (points - low) / size  # 0..1 inside the frame
    if flip_x:
        unit[:, 0] = 1 - unit[:, 0]
    if flip_y:
        unit[:, 1] = 1 - unit[:, 1]
    cols = left + unit[:, 0] * box_w
    rows = top + (1 - unit[:, 1]) * box_h  # y up, image rows down
    inside = (unit >= 0).all(axis=1) & (unit <= 1).all(axis=1)
    r = np.clip(rows[inside].astype(np.int64), 0, height - 1)
    c = np.clip(cols[inside].astype(np.int64), 0, width - 1)
    return np.bincount(r * width + c, minlength=height * width).reshape(height, width)


def contractive(maps: np.ndarray) -> bool:
    """Every map shrinks distances (largest singular value of A_i below 1): the chaos game then settles on
    a sharp attractor; maps close to 1 or above give diffuse clouds that pass the filling rate as noise."""
    return bool((np.linalg.norm(maps[:, :, :2], ord=2, axis=(1, 2)) < 1).all())


def fill_rate(ifs: IFS, rng: np.random.Generator, size: int = FILL_SIZE) -> float:
    """The share of a size x size frame the attractor's points cover, drawn to fill the frame:
    FractalDB's filling rate, which rejects IFS that collapse to a line or a few dots."""
    counts = rasterise(chaos_game(ifs, rng), size, size, 0, 0, size, size)
    return float((counts > 0).mean())


def sample_category(seed: int, category: int, threshold: float = FILL_THRESHOLD) -> IFS:
    """Category `category` of the set drawn with `seed`: the first random IFS (every parameter uniform in
    [-1, 1]) whose filling rate reaches `threshold`. Attempt k draws from rng([seed, 0, category, k]), so a
    category never depends on the others."""
    for attempt in range(MAX_ATTEMPTS):
        rng = np.random.default_rng([seed, CATEGORY_STREAM, category, attempt])
        count = int(rng.integers(MAPS[0], MAPS[1] + 1))
        maps = rng.uniform(-1, 1, size=(count, 2, 3))
        ifs = IFS(maps, ifs_probabilities(maps))
        if contractive(maps) and fill_rate(ifs, rng) >= threshold:
            return ifs
    raise RuntimeError(f"fractal category {category} (seed {seed}): no IFS reached filling rate {threshold} in "
                       f"{MAX_ATTEMPTS} draws")


def perturb(ifs: IFS, rng: np.random.Generator) -> IFS:
    """An instance's IFS: one of the 6n map parameters multiplied by a weight in WEIGHT_RANGE (FractalDB's
    intra-category variation); the probabilities follow the new determinants."""
    maps = ifs.maps.copy()
    flat = maps.reshape(-1)
    flat[rng.integers(flat.size)] *= rng.uniform(*WEIGHT_RANGE)
    return IFS(maps, ifs_probabilities(maps))


def render_instance(ifs: IFS, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """One uint8 (height, width, 3) image of an IFS: perturbed, flipped (each axis p = 0.5), drawn at a
    random size (each side 70-100 % of the image's) and place, as brightness log(1 + visits) in one random colour (or white, p = 0.5) on black."""
    points = chaos_game(perturb(ifs, rng), rng)
    flip_x, flip_y = rng.random(2) < 0.5
    box_h, box_w = height * rng.uniform(*SCALE_RANGE), width * rng.uniform(*SCALE_RANGE)
    top, left = rng.uniform(0, height - box_h), rng.uniform(0, width - box_w)
    counts = rasterise(points, height, width, top, left, box_h, box_w, bool(flip_x), bool(flip_y))
    brightness = np.log1p(counts) / np.log1p(max(int(counts.max()), 1))
    colour = np.ones(3) if rng.random() < 0.5 else rng.uniform(0.2, 1.0, size=3)
    return np.round(brightness[..., None] * colour * 255).astype(np.uint8)


def fractal_image(seed: int, category: int, instance: int, height: int, width: int,
                  ifs: IFS | None = None) -> np.ndarray:
    """Instance `instance` of category `category`: a uint8 (height, width, 3) image, the same bytes however
    and whenever it is asked for (pass the category's `ifs` to skip its search)."""
    ifs = sample_category(seed, category) if ifs is None else ifs
    return render_instance(ifs, np.random.default_rng([seed, INSTANCE_STREAM, category, instance]), height, width)


def fractal_set(seed: int, classes: int, images_per_class: int, height: int, width: int,
                first_instance: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Instances first_instance .. first_instance + images_per_class - 1 of categories 0 .. classes - 1:
    (uint8 images (N, height, width, 3), int64 labels (N,)), category-major. A held-out set is the same
    categories with other instance numbers."""
    images = np.empty((classes * images_per_class, height, width, 3), dtype=np.uint8)
    for category in range(classes):
        ifs = sample_category(seed, category)
        for k in range(images_per_class):
            images[category * images_per_class + k] = fractal_image(
                seed, category, first_instance + k, height, width, ifs)
    labels = np.repeat(np.arange(classes, dtype=np.int64), images_per_class)
    return images, labels
