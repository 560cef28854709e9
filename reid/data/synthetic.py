"""The procedural visible-infrared pedestrian dataset, written in the real SYSU-MM01 and RegDB layouts.

`python -m reid synth --out data/synthetic --seed 0` writes ``<out>/SYSU-MM01`` and ``<out>/RegDB`` so
that every test, notebook and CI run works without the (licence-restricted) real data, through the
very same readers.

What makes it *cross-modal* rather than a colour-matching toy:
- every identity has a body shape (build, height, leg/arm proportions, head size), garments with a
  pattern (plain, horizontal/vertical stripes, checks, two-tone) and accessories (backpack, shoulder
  bag, hat); shape, pattern and accessories survive into infrared;
- the infrared rendering has no hue: a garment's brightness comes from a *material* value that only
  half follows the colour's luminance (two equally red shirts can be bright and dark in IR, so
  grey-scale helps but colour cannot decide); pattern stripes use two materials so the pattern
  remains visible, its IR contrast running against the luminance contrast about one time in three.
  SYSU-MM01's IR cameras are near-infrared (active illumination: reflectance, a bright centre
  falling off to the edges, slight blur); RegDB's is thermal (emission: the body is warm against a
  cool scene, strong optical blur); both are noisy;
- cameras differ in viewpoint mix (front / back / side, which moves or hides bags), scale,
  position, illumination (gain and colour cast) and background; SYSU cameras 1-3 are "indoor",
  4-6 "outdoor", like the real set.

Everything is drawn from ``numpy.random.default_rng([seed, ...])`` keyed by what is drawn, so the
output is byte-identical for a seed, whatever the order of generation. That also lets `ensure_masks`
redraw every person of an existing set and write its silhouette beside the layouts
(``<out>/masks/SYSU-MM01/cam3/0001/0001.png``...): ground truth for measuring attention maps
(`reid.tools.gradcam.person_attention`) that the readers and the real-data path never see.
"""

from __future__ import annotations

import colorsys
import json
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from reid.data.capture import (
    CAPTURES,
    OCCLUDERS,
    Capture,
    Scene,
    make_scene,
    motion_blur,
    near_ir_irradiance,
    occluder,
    scene_window,
    shift_x,
    smooth_noise,
    thermal_emission,
)
from reid.data.capture import clutter_objects as _clutter_objects
from reid.data.identity import SYNTHETIC_MANIFEST
from reid.data.regdb import SPLITS
from reid.utils.atomic import file_lock, write_text_atomically
from reid.utils.errors import UserError

GENERATOR_VERSION = 5  # the default version (realistic capture, docs/synthetic.md); every version of `CAPTURES` can be generated and redrawn
VERSIONS = tuple(CAPTURES)
MANIFEST = SYNTHETIC_MANIFEST
SYSU_RGB, SYSU_IR = (1, 2, 4, 5), (3, 6)
INDOOR = {1, 2, 3}
LUMINANCE_COUPLING = 0.5  # share of a fabric's IR brightness that follows its visible luminance
SKIN = 0.9  # IR material of skin: warm (thermal) and bright (near-IR)
PATTERNS = ("plain", "hstripes", "vstripes", "checks", "twotone_v", "twotone_h")
BOTTOMS = ("trousers", "shorts", "skirt")


def check_version(version: int) -> Capture:
    """The capture settings of a generator version, or a one-line error."""
    if version not in CAPTURES:
        raise UserError(f"synthetic generator version {version!r} does not exist; known: {list(VERSIONS)}")
    return CAPTURES[version]


@dataclass(frozen=True)
class Sizes:
    """How big the generated sets are. ``small`` presets are for tests (a few seconds)."""

    sysu_train_ids: int = 300  # SYSU-MM01 trains on 395 (296 train + 99 val ids); version 3 had 60
    sysu_val_ids: int = 10
    sysu_test_ids: int = 30
    images_per_rgb_camera: int = 4
    images_per_ir_camera: int = 6
    regdb_ids: int = 60
    regdb_images: int = 10  # per modality, as in the real RegDB
    height: int = 128
    width: int = 64

    @classmethod
    def preset(cls, small: bool = False, version: int = GENERATOR_VERSION, **overrides) -> Sizes:
        check_version(version)
        base = cls(8, 2, 4, 2, 3, 12, 4) if small else cls()
        if version >= 5 and not small:  # the real SYSU-MM01 test split: a Rank-1 step is 1/96, not 1/30
            base = replace(base, sysu_test_ids=96)
        unknown = set(overrides) - set(asdict(base))
        if unknown:
            raise UserError(f"unknown synthetic size(s) {sorted(unknown)}; known: {sorted(asdict(base))}")
        sizes = replace(base, **{k: int(v) for k, v in overrides.items() if v is not None})
        for name, value in asdict(sizes).items():
            if value < 1:
                raise UserError(f"synthetic size {name} must be >= 1, got {value}")
        if sizes.height < 32 or sizes.width < 16:
            raise UserError(f"synthetic image size must be at least 32x16, got {sizes.height}x{sizes.width}")
        if sizes.regdb_ids < 2:
            raise UserError("synthetic regdb_ids must be >= 2 (half train, half test)")
        return sizes


# --------------------------------------------------------------------------------------------------
# Identities and cameras


@dataclass
class Garment:
    colors: np.ndarray  # (2, 3) RGB in [0, 1]: primary, secondary
    materials: np.ndarray  # (2,) infrared brightness of the two materials, half luminance, half independent
    pattern: str
    period: float  # stripe / check period as a fraction of body height


@dataclass
class Identity:
    build: float  # shoulder / hip width factor
    stature: float  # body height as a fraction of the frame
    leg_fraction: float
    arm_fraction: float
    head: float
    female: bool
    skin: np.ndarray
    hair: np.ndarray
    hair_long: bool
    top: Garment
    bottom: Garment
    bottom_kind: str
    shoes: np.ndarray
    backpack: bool
    shoulder_bag: int  # 0 none, -1 / +1 side
    bag: Garment
    hat: bool
    hat_color: np.ndarray
    views: np.ndarray = field(default_factory=lambda: np.ones(3) / 3)  # walking-direction habit
    marks: Marks | None = None  # version 5: small identity marks
    insulation: dict[str, float] = field(default_factory=dict)  # version 5: thermal insulation of each part


@dataclass
class Marks:
    """Small marks that tell an identity apart when clothing does not (generator version 5)."""

    logo_side: str | None  # "front" (chest), "back" or None
    logo_disc: bool
    logo_size: float  # fraction of the body height
    logo_x: float  # fraction of the shoulder half-width, from the centre
    logo_y: float  # fraction of the torso, from the neck
    logo_color: np.ndarray
    logo_material: float  # the print's IR material: prints and fabric differ in near-IR
    collar: bool
    collar_color: np.ndarray
    collar_material: float
    glasses: bool
    wristband: int  # 0 none, -1 / +1 which wrist
    wristband_color: np.ndarray
    wristband_material: float


def draw_marks(rng: np.random.Generator) -> Marks:
    return Marks(
        logo_side=[None, "front", "back"][int(rng.choice(3, p=[0.3, 0.45, 0.25]))], logo_disc=bool(rng.random() < 0.5),
        logo_size=rng.uniform(0.05, 0.09), logo_x=rng.uniform(-0.4, 0.4), logo_y=rng.uniform(0.15, 0.45),
        logo_color=_color(rng, (0.4, 1.0), (0.3, 1.0)), logo_material=rng.uniform(0.05, 0.95),
        collar=bool(rng.random() < 0.35), collar_color=_color(rng), collar_material=rng.uniform(0.1, 0.9),
        glasses=bool(rng.random() < 0.3), wristband=int(rng.choice([0, 0, -1, 1])),
        wristband_color=_color(rng, (0.3, 1.0), (0.2, 1.0)), wristband_material=rng.uniform(0.1, 0.9))


def draw_insulation(rng: np.random.Generator) -> dict[str, float]:
    """How little body heat each part lets through (0 bare skin, 1 none): thermal images show it, not the
    colour (a thin shirt is warm, a padded jacket or a bag is at the scene's temperature)."""
    return {"top": rng.uniform(0.2, 0.85), "bottom": rng.uniform(0.25, 0.7), "bag": rng.uniform(0.85, 1.0),
            "shoes": 0.8, "hair": rng.uniform(0.4, 0.7), "hat": rng.uniform(0.6, 0.9), "glasses": 1.0, "mark": 0.5}


def dress_alike(person: Identity, leader: Identity) -> Identity:
    """``person`` in ``leader``'s outfit and bags, of nearly the same build: a look-alike that only its
    marks, shoes, hair and face tell apart (version 5's `lookalike_share`)."""
    return replace(person, top=leader.top, bottom=leader.bottom, bottom_kind=leader.bottom_kind,
                   backpack=leader.backpack, shoulder_bag=leader.shoulder_bag, bag=leader.bag, hat=leader.hat,
                   hat_color=leader.hat_color, insulation=leader.insulation,
                   build=(person.build + 3 * leader.build) / 4, stature=(person.stature + 3 * leader.stature) / 4)


def lookalike_leaders(groups: list[list[int]], rng: np.random.Generator, share: float) -> dict[int, int]:
    """``{pid: leader}``: within each group of identities (a split, so look-alikes meet in one gallery),
    ``share`` of them in pairs, the second dressed as the first."""
    leaders = {}
    for ids in groups:
        chosen = rng.permutation(ids)[:2 * round(share * len(ids) / 2)].tolist()
        leaders.update({b: a for a, b in zip(chosen[0::2], chosen[1::2])})
    return leaders


def _stranger(rng: np.random.Generator) -> Identity:
    """Someone who is not in the dataset: a bystander or an occluding passer-by."""
    return replace(make_identity(rng), marks=draw_marks(rng), insulation=draw_insulation(rng))


def _color(rng: np.random.Generator, sat=(0.25, 0.9), val=(0.2, 0.95)) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(*sat), rng.uniform(*val)))


def _luminance(rgb: np.ndarray) -> float:
    return float(rgb @ [0.299, 0.587, 0.114])


def _garment(rng: np.random.Generator, patterns=PATTERNS) -> Garment:
    pattern = str(rng.choice(patterns))
    colors = np.stack([_color(rng), _color(rng)])
    # Infrared brightness of a fabric only partly follows its visible luminance (dyes differ in
    # near-IR reflectance; thermal emission depends on the material): half of it comes from the
    # luminance, half is an independent material draw. So grey-scale copies of RGB images carry
    # some IR information (why the paper feeds them) but colour never decides the IR image.
    lum = np.array([_luminance(c) for c in colors])
    m1 = 0.1 + 0.8 * (LUMINANCE_COUPLING * lum[0] + (1 - LUMINANCE_COUPLING) * rng.random())  # in [0.1, 0.9]
    # The second material differs clearly so the pattern survives into IR; it is brighter than the
    # first when the secondary colour is lighter, but only with probability 0.75.
    lighter = (lum[1] > lum[0]) == (rng.random() < 0.75)
    m2 = m1 + (1 if lighter else -1) * rng.uniform(0.3, 0.5)
    if not 0.0 <= m2 <= 1.0:
        m2 = m1 - 0.35 if m1 > 0.5 else m1 + 0.35
    return Garment(colors, np.array([m1, float(m2)]), pattern, rng.uniform(0.05, 0.11))


def make_identity(rng: np.random.Generator) -> Identity:
    female = bool(rng.random() < 0.45)
    skin_v = rng.uniform(0.35, 0.95)
    return Identity(
        build=rng.uniform(0.75, 1.3),
        stature=rng.uniform(0.78, 0.95),
        leg_fraction=rng.uniform(0.42, 0.54),
        arm_fraction=rng.uniform(0.3, 0.4),
        head=rng.uniform(0.055, 0.075),
        female=female,
        skin=np.array(colorsys.hsv_to_rgb(rng.uniform(0.02, 0.1), rng.uniform(0.3, 0.6), skin_v)),
        hair=np.array(colorsys.hsv_to_rgb(rng.uniform(0.0, 0.12), rng.uniform(0.2, 0.7), rng.uniform(0.05, 0.5))),
        hair_long=bool(rng.random() < (0.6 if female else 0.1)),
        top=_garment(rng),
        bottom=_garment(rng, ("plain", "plain", "plain", "vstripes", "checks")),
        bottom_kind=str(rng.choice(BOTTOMS, p=[0.6, 0.2, 0.2] if female else [0.8, 0.2, 0.0])),
        shoes=_color(rng, (0.0, 0.5), (0.05, 0.9)),
        backpack=bool(rng.random() < 0.35),
        shoulder_bag=int(rng.choice([0, 0, -1, 1])),
        bag=_garment(rng, ("plain", "plain", "hstripes")),
        hat=bool(rng.random() < 0.25),
        hat_color=_color(rng),
        views=rng.dirichlet([2.0, 2.0, 2.0]),
    )


@dataclass
class Camera:
    indoor: bool
    views: np.ndarray  # probabilities of front / back / side
    scale: float  # person height multiplier
    gain: float
    cast: np.ndarray  # RGB illumination colour
    background: np.ndarray  # (H, W, 3) visible background
    ir_background: np.ndarray  # (H, W) infrared background
    thermal: bool  # far-infrared emission (RegDB) rather than near-infrared reflectance (SYSU)
    blur: float  # infrared blur radius (px at 128x64)
    scene: Scene | None = None  # version 5: the wide scene each frame sees a window of


def make_camera(rng: np.random.Generator, indoor: bool, height: int, width: int, regdb: bool = False) -> Camera:
    yy, xx = np.mgrid[0:height, 0:width] / np.array([height, width])[:, None, None]
    horizon = rng.uniform(0.55, 0.8)
    if indoor:
        wall, floor = _color(rng, (0.05, 0.3), (0.45, 0.85)), _color(rng, (0.05, 0.35), (0.25, 0.6))
        cast = np.array([1.08, 1.0, 0.85]) * rng.uniform(0.95, 1.05, 3)
    else:
        wall, floor = _color(rng, (0.1, 0.5), (0.5, 0.95)), _color(rng, (0.05, 0.4), (0.3, 0.7))
        cast = np.array([0.95, 1.0, 1.08]) * rng.uniform(0.95, 1.05, 3)
    bg = np.where((yy < horizon)[..., None], wall, floor) * (0.85 + 0.3 * yy[..., None])
    # A few vertical structures (doors, poles, trees) at fixed places per camera.
    for _ in range(rng.integers(1, 4)):
        x0, w = rng.uniform(0, 1), rng.uniform(0.05, 0.25)
        bg = np.where(((xx > x0) & (xx < x0 + w) & (yy < horizon))[..., None], _color(rng, val=(0.2, 0.8)), bg)
    if regdb:  # thermal: a cool scene with a smooth gradient
        ir = rng.uniform(0.08, 0.3) + rng.uniform(-0.1, 0.1) * yy + 0.04 * np.sin(xx * rng.uniform(3, 9))
    else:  # near-infrared: the scene's reflectance, unrelated to its colours, lit from the camera
        ir = rng.uniform(0.15, 0.45) + rng.uniform(-0.15, 0.15) * (yy > horizon)
        for _ in range(rng.integers(1, 4)):
            x0, w = rng.uniform(0, 1), rng.uniform(0.05, 0.25)
            ir = np.where((xx > x0) & (xx < x0 + w) & (yy < horizon), rng.uniform(0.1, 0.6), ir)
    if rng.random() < 0.5:  # a hot or shiny object (radiator, lamp, car) somewhere in the scene
        cy, cx = rng.uniform(0.1, 0.9), rng.choice([rng.uniform(0, 0.2), rng.uniform(0.8, 1.0)])
        ir = ir + 0.4 * np.exp(-(((yy - cy) / 0.08) ** 2 + ((xx - cx) / 0.1) ** 2))
    views = np.array([0.5, 0.5, 0.0]) if regdb else rng.dirichlet([1.5, 1.5, 1.5])
    return Camera(indoor, views, rng.uniform(0.85, 1.05) if not regdb else rng.uniform(0.95, 1.0),
                  rng.uniform(0.7, 1.2), cast, np.clip(bg, 0, 1), np.clip(ir, 0, 1), thermal=regdb,
                  blur=rng.uniform(1.2, 1.8) if regdb else rng.uniform(0.5, 0.9))


# --------------------------------------------------------------------------------------------------
# Rendering: a painter's algorithm over boolean masks on a pixel grid (vectorised numpy)


def _limb(yy, xx, y0, y1, x0, x1, half):
    """A straight limb from (y0, x0) to (y1, x1) of half-width ``half`` (pixels)."""
    t = (yy - y0) / max(y1 - y0, 1e-6)
    return (t >= 0) & (t <= 1) & (np.abs(xx - (x0 + (x1 - x0) * t)) <= half)


def _trapezoid(yy, xx, y0, y1, cx, half0, half1):
    t = (yy - y0) / max(y1 - y0, 1e-6)
    return (t >= 0) & (t <= 1) & (np.abs(xx - cx) <= half0 + (half1 - half0) * t)


def _ellipse(yy, xx, cy, cx, ry, rx):
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1


def _pattern(g: Garment, yy, xx, top: float, cx: float, body: float, flip: bool) -> np.ndarray:
    """Boolean map of where the garment shows its secondary colour / material."""
    u, v = (yy - top) / body, (xx - cx) / body
    if flip:
        v = -v
    p = g.period
    if g.pattern == "hstripes":
        return (u / p) % 2 < 1
    if g.pattern == "vstripes":
        return (v / p + 0.5) % 2 < 1
    if g.pattern == "checks":
        return ((u / p) % 2 < 1) ^ ((v / p + 0.5) % 2 < 1)
    if g.pattern == "twotone_v":
        return v > 0
    if g.pattern == "twotone_h":
        return u > 0.16
    return np.zeros_like(yy, dtype=bool)


@dataclass
class Figure:
    """One person as drawn: the painter's layers ``(mask, rgb, ir_material, part)`` (``part`` names what the
    layer is, for the thermal physics of version 5), their union, the body shading and where the person
    stands (pixels: the body's height, the feet line, the horizontal centre)."""

    yy: np.ndarray
    xx: np.ndarray
    layers: list[tuple[np.ndarray, object, object, str]]
    on_body: np.ndarray
    shade: np.ndarray
    body: float
    feet: float
    cx: float
    arm_pose: str = "swing"


ARM_POSES = ("swing", "phone", "pocket", "carry")


def _figure(person: Identity, cam: Camera, rng: np.random.Generator, height: int, width: int,
            cap: Capture = CAPTURES[4]) -> Figure:
    """The person of one image, before any colour: the pose drawn from ``rng`` (the first draws of the
    image's stream, so `render` and `silhouette` see the same pose) within the capture's ranges."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    view = int(rng.choice(3, p=0.5 * cam.views + 0.5 * person.views))  # 0 front, 1 back, 2 side
    body = height * person.stature * cam.scale * rng.uniform(*cap.height_range)
    feet = height * rng.uniform(*cap.feet_range) + body * 0.02
    if not cap.truncation:
        feet = min(height - 1.0, feet)
    top = feet - body
    cx = width * rng.uniform(*cap.centre_range)
    phase = rng.uniform(0, 2 * np.pi)
    arm_pose = str(rng.choice(ARM_POSES, p=[0.7, 0.1, 0.1, 0.1])) if cap.pose_variety else "swing"
    stride = np.sin(phase) * body * (0.12 if view == 2 else 0.03)
    swing = -np.sin(phase) * body * (0.08 if view == 2 else 0.02)
    narrow = 0.6 if view == 2 else 1.0
    shoulder = 0.12 * body * person.build * narrow
    hip_w = 0.095 * body * person.build * narrow
    head_r = person.head * body
    neck = top + 2 * head_r
    hip = feet - person.leg_fraction * body
    leg_half = 0.045 * body * person.build
    arm_half = 0.032 * body * person.build
    mirrored = view == 1  # seen from the back, the person's left is on the image's left

    # Layers: (mask, rgb colour or (H,W,3) texture, IR material in [0, 1] or (H,W) texture, part).
    layers: list[tuple[np.ndarray, object, object, str]] = []

    def garment_layer(mask, g: Garment, gtop: float, part: str):
        sec = _pattern(g, yy, xx, gtop, cx, body, mirrored)
        rgb = np.where(sec[..., None], g.colors[1], g.colors[0])
        ir = np.where(sec, g.materials[1], g.materials[0])
        layers.append((mask, rgb, ir, part))

    # Legs (skin under shorts/skirts), shoes.
    leg_x = [(cx - hip_w * 0.5, cx - hip_w * 0.5 + stride), (cx + hip_w * 0.5, cx + hip_w * 0.5 - stride)]
    if view == 2:
        leg_x = [(cx, cx + stride), (cx, cx - stride)]
    legs = np.zeros_like(yy, dtype=bool)
    for x0, x1 in leg_x:
        legs |= _limb(yy, xx, hip, feet - 0.03 * body, x0, x1, leg_half)
    shoes = np.zeros_like(legs)
    for _, x1 in leg_x:
        shoes |= _ellipse(yy, xx, feet - 0.02 * body, x1, 0.025 * body, leg_half * 1.4)
    knee = hip + 0.5 * (feet - hip)
    if person.bottom_kind == "trousers":
        garment_layer(legs, person.bottom, hip, "bottom")
    else:
        layers.append((legs, person.skin, SKIN, "skin"))
        cover = legs & (yy < knee) if person.bottom_kind == "shorts" else _trapezoid(
            yy, xx, hip - 0.02 * body, knee, cx, hip_w * 1.05, hip_w * 1.5)
        garment_layer(cover, person.bottom, hip, "bottom")
    layers.append((shoes, person.shoes, 0.0, "shoes"))

    torso = _trapezoid(yy, xx, neck, hip + 0.02 * body, cx, shoulder, hip_w * 1.05)
    head_cy = top + head_r
    arm_len = person.arm_fraction * body
    arms = np.zeros_like(legs)
    hands = np.zeros_like(legs)
    wrists = []  # (row, column) of each visible hand
    sides = [0.0] if view == 2 else [-1.0, 1.0]
    for s in sides:
        x0 = cx + s * (shoulder + arm_half * 0.6)
        x1 = x0 + s * 0.01 * body + (swing if s <= 0 else -swing)
        if s >= 0 and arm_pose == "phone":  # forearm folded up, the hand at the ear
            elbow_y, elbow_x = neck + 0.55 * arm_len, x0 + (s or 1) * arm_half
            hand_y, hand_x = head_cy + 0.3 * head_r, cx + (s or 1) * head_r
            arms |= _limb(yy, xx, neck + 0.02 * body, elbow_y, x0, elbow_x, arm_half)
            arms |= _limb(yy, xx, hand_y, elbow_y, hand_x, elbow_x, arm_half)
            hands |= _ellipse(yy, xx, hand_y, hand_x, arm_half * 1.2, arm_half * 1.1)
            wrists.append((hand_y + arm_half, hand_x))
            continue
        if s >= 0 and arm_pose == "pocket":  # a shorter, still arm; the hand in the pocket
            arms |= _limb(yy, xx, neck + 0.02 * body, neck + 0.8 * arm_len, x0, x0 - (s or 1) * arm_half * 0.4,
                          arm_half)
            continue
        arms |= _limb(yy, xx, neck + 0.02 * body, neck + arm_len, x0, x1, arm_half)
        hands |= _ellipse(yy, xx, neck + arm_len + arm_half, x1, arm_half * 1.2, arm_half * 1.1)
        wrists.append((neck + arm_len - arm_half * 0.5, x1))
    marks_under, marks_over = _marks(person, view, yy, xx, cx, neck, hip, body, shoulder, head_cy, head_r, wrists) if cap.marks else ([], [])
    if person.backpack and view == 1:  # seen from behind the backpack hides most of the torso
        garment_layer(torso, person.top, neck, "top")
        garment_layer(_trapezoid(yy, xx, neck + 0.03 * body, hip - 0.02 * body, cx, shoulder * 0.8,
                                 shoulder * 0.85), person.bag, neck, "bag")
        layers.extend(marks_under)
        garment_layer(arms, person.top, neck, "top")
    else:
        garment_layer(torso, person.top, neck, "top")
        layers.extend(marks_under)  # on the garment, under the straps and arms
        if person.backpack and view == 2:  # side view: the pack sticks out behind
            bx = cx - np.sign(stride + 1e-6) * shoulder * 1.6
            garment_layer(_trapezoid(yy, xx, neck + 0.03 * body, hip - 0.04 * body, bx, shoulder * 0.5,
                                     shoulder * 0.55), person.bag, neck, "bag")
        if person.backpack and view == 0:  # front view: only the two straps
            for s in (-1, 1):
                straps = _limb(yy, xx, neck, hip - 0.1 * body, cx + s * shoulder * 0.55, cx + s * shoulder * 0.6,
                               0.015 * body + 0.5)
                layers.append((straps, person.bag.colors[0], person.bag.materials[0], "bag"))
        garment_layer(arms, person.top, neck, "top")
    layers.append((hands, person.skin, SKIN, "skin"))
    if arm_pose == "carry" and wrists:  # something carried in the hand: a shopping bag, a case
        hand_y, hand_x = wrists[-1]
        garment_layer(_trapezoid(yy, xx, hand_y + arm_half, hand_y + 0.16 * body, hand_x, 0.04 * body, 0.055 * body),
                      person.bag, hand_y, "bag")
    if person.shoulder_bag:
        side = person.shoulder_bag * (-1 if mirrored else 1) * (0.4 if view == 2 else 1)
        bx = cx + side * (shoulder + arm_half * 2.2)
        bag = _trapezoid(yy, xx, hip - 0.1 * body, hip + 0.07 * body, bx, 0.06 * body, 0.07 * body)
        strap = _limb(yy, xx, neck, hip - 0.1 * body, cx - side * shoulder * 0.7, bx, 0.012 * body + 0.5)
        garment_layer(bag | strap, person.bag, hip, "bag")

    # Head: face (front / side) or hair (back), long hair down to the shoulders, optional hat.
    head = _ellipse(yy, xx, head_cy, cx, head_r, head_r * 0.85)
    hair = head & (yy < head_cy - 0.3 * head_r) if view != 1 else head
    if person.hair_long:
        hair |= _trapezoid(yy, xx, head_cy, neck + 0.12 * body, cx, head_r * 0.9, head_r * 1.1) & \
            ((view == 1) | (np.abs(xx - cx) > head_r * 0.55))
    layers.append((head, person.skin, 1.0, "skin"))
    layers.append((hair, person.hair, 0.35, "hair"))
    if person.hat:
        hat = _ellipse(yy, xx, top + 0.4 * head_r, cx, 0.55 * head_r, head_r * 1.05) & (yy < top + 0.8 * head_r)
        layers.append((hat, person.hat_color, 0.0, "hat"))
    layers.extend(marks_over)  # glasses and wristband go over the face and the hands

    # Cylinder-like shading: the body darkens towards its silhouette edges.
    shade = np.clip(1 - 0.3 * ((xx - cx) / (shoulder * 1.6)) ** 2, 0.6, 1).astype(np.float32)
    on_body = np.zeros_like(legs)
    for mask, *_ in layers:
        on_body |= mask
    return Figure(yy, xx, layers, on_body, shade, body, feet, cx, arm_pose)


def _marks(person: Identity, view: int, yy, xx, cx, neck, hip, body, shoulder, head_cy, head_r, wrists):
    """The identity's small marks as layers: ``(on the garment, over face and hands)``. A logo on the chest
    or the back, a collar, glasses, a wristband: a few pixels at 96x48, what tells look-alikes apart."""
    m = person.marks
    under, over = [], []
    if m is None:
        return under, over
    logo_shown = (m.logo_side == "front" and view == 0) or (m.logo_side == "back" and view == 1 and not person.backpack)
    if logo_shown:
        ly = neck + m.logo_y * (hip - neck)
        lx = cx + (-m.logo_x if view == 1 else m.logo_x) * shoulder
        size = m.logo_size * body
        shape = _ellipse(yy, xx, ly, lx, size / 2, size / 2) if m.logo_disc else \
            (np.abs(yy - ly) <= size / 2) & (np.abs(xx - lx) <= size * 0.6)
        under.append((shape, m.logo_color, m.logo_material, "top"))
    if m.collar:
        collar = _trapezoid(yy, xx, neck, neck + 0.035 * body, cx, shoulder * 0.45, shoulder * 0.55)
        under.append((collar, m.collar_color, m.collar_material, "top"))
    if m.glasses and view != 1:
        band = (np.abs(yy - (head_cy - 0.1 * head_r)) <= 0.16 * head_r + 0.3)
        band &= (xx >= cx) & (xx <= cx + 0.95 * head_r) if view == 2 else np.abs(xx - cx) <= 0.8 * head_r
        over.append((band, np.array([0.08, 0.08, 0.1]), 0.05, "glasses"))
    if m.wristband and wrists:
        wy, wx = wrists[0 if m.wristband < 0 else -1]
        over.append((_ellipse(yy, xx, wy, wx, 0.018 * body + 0.5, 0.035 * body + 0.5), m.wristband_color,
                     m.wristband_material, "mark"))
    return under, over


def silhouette(person: Identity, cam: Camera, rng: np.random.Generator, height: int, width: int,
               cap: Capture = CAPTURES[4], visible: bool = True) -> np.ndarray:
    """Boolean (H, W) person mask of the image `render` draws from the same ``rng`` seed: the union of
    its layers (body, clothes, bags, hair, hat), before the infrared blur and the noise. From version 5 on,
    the *visible* person: less what an occluder hides (``visible=False``: the whole person)."""
    if not cap.realistic:
        return _figure(person, cam, rng, height, width, cap).on_body
    frame = _frame(person, cam, rng, height, width, cap)
    return frame.figure.on_body & ~frame.occluded if visible else frame.figure.on_body


def render(person: Identity, cam: Camera, rng: np.random.Generator, height: int, width: int,
           infrared: bool, cap: Capture = CAPTURES[4]) -> np.ndarray:
    """One image: float (H, W, 3) in [0, 1] for visible, (H, W) for infrared."""
    if cap.realistic:
        return _render_capture(person, cam, rng, height, width, infrared, cap)
    fig = _figure(person, cam, rng, height, width, cap)
    yy, xx, layers, on_body, shade = fig.yy, fig.xx, fig.layers, fig.on_body, fig.shade
    if infrared:
        img = cam.ir_background.astype(np.float32).copy()
        for mask, _, material, _ in layers:
            # Thermal: clothes are warmed by the body; near-IR: plain reflectance.
            img = np.where(mask, 0.35 + 0.55 * np.asarray(material) if cam.thermal else 0.1 + 0.8 * np.asarray(material), img)
        img = np.where(on_body, img * shade, img)
        if not cam.thermal:  # active illuminator: bright centre, darker corners
            img = img * (1.1 - 0.45 * (((yy / height - 0.5) * 1.6) ** 2 + ((xx / width - 0.5) * 1.4) ** 2))
        # Emission / illumination strength varies per image: a global gain and offset.
        img = img * rng.uniform(0.8, 1.1) + rng.uniform(-0.08, 0.08)
        pil = Image.fromarray(np.clip(img * 255, 0, 255).astype(np.uint8), "L")
        blurred = np.asarray(pil.filter(ImageFilter.GaussianBlur(cam.blur * height / 128)), np.float32) / 255
        return np.clip(blurred + rng.normal(0, 0.035, blurred.shape), 0, 1)
    img = cam.background.astype(np.float32).copy()
    for mask, rgb, *_ in layers:
        img = np.where(mask[..., None], rgb, img)
    img = np.where(on_body[..., None], img * shade[..., None], img)
    light = cam.gain * rng.uniform(0.85, 1.15) * cam.cast * rng.uniform(0.96, 1.04, 3)
    img = img * light.astype(np.float32)
    return np.clip(img + rng.normal(0, 0.015, img.shape), 0, 1)


@dataclass
class Frame:
    """Everything in one version-5 frame besides the scene: the walker, what hides part of them (drawn over
    them), what comes and goes behind them, the scene window, the motion blur and the walker's distance."""

    figure: Figure
    occluders: list[tuple[Identity | None, Figure | None, list]]  # (passer-by, their figure, layers) in front
    occluded: np.ndarray
    behind: list[tuple[Identity | None, Figure | None, list]]  # clutter objects and bystanders
    offset: float
    blur: int
    distance: float


def _shifted(fig: Figure, dx: int) -> Figure:
    """A figure moved ``dx`` pixels sideways (a passer-by placed beside the walker)."""
    def move(a):
        a = np.asarray(a)
        return shift_x(a, dx, False if a.dtype == bool else 0) if a.ndim >= 2 else a

    layers = [(move(m), move(rgb), move(ir), part) for m, rgb, ir, part in fig.layers]
    return replace(fig, layers=layers, on_body=move(fig.on_body), shade=move(fig.shade), cx=fig.cx + dx)


def _passer_by(rng: np.random.Generator, cam: Camera, anchor_cx: float, offset: tuple[float, float],
               height: int, width: int, cap: Capture):
    person = _stranger(rng)
    fig = _figure(person, cam, rng, height, width, cap)
    dx = round((1 if rng.random() < 0.5 else -1) * rng.uniform(*offset) * width + anchor_cx - fig.cx)
    fig = _shifted(fig, dx)
    return person, fig, fig.layers


def _frame(person: Identity, cam: Camera, rng: np.random.Generator, height: int, width: int, cap: Capture) -> Frame:
    """The draws of one version-5 frame, in a fixed order: the walker's pose (`_figure`), then the occluder
    (all `silhouette` needs), then the scene window, clutter, bystander and motion blur. Each step draws
    from its own stream seeded from the image's, so a step never shifts another's draws."""
    fig = _figure(person, cam, rng, height, width, cap)
    occ_rng = np.random.default_rng(rng.integers(2 ** 63))
    occluders = []
    if occ_rng.random() < cap.occlusion_share:
        kind = str(occ_rng.choice(OCCLUDERS))
        if kind == "person":  # someone walking past in front, covering one side
            occluders.append(_passer_by(occ_rng, cam, fig.cx, (0.3, 0.55), height, width, cap))
        else:
            mask, rgb, ir = occluder(occ_rng, kind, fig.cx, fig.feet, fig.body, height, width, cam.thermal)
            occluders.append((None, None, [(mask, rgb, ir, "scene")]))
    occluded = np.zeros((height, width), bool)
    for _, _, layers in occluders:
        for mask, *_ in layers:
            occluded |= mask
    scene_rng = np.random.default_rng(rng.integers(2 ** 63))
    offset = float(scene_rng.random())
    horizon = cam.scene.horizon
    behind = [(None, None, [(m, rgb, ir, "scene")]) for m, rgb, ir in _clutter_objects(
        scene_rng, int(scene_rng.poisson(cap.clutter)), horizon, height, width, cam.thermal)]
    if scene_rng.random() < cap.bystander_share:
        behind.append(_passer_by(scene_rng, cam, fig.cx, (0.45, 0.8), height, width, cap))
    blur = round(scene_rng.uniform(2, 6) * height / 128) if scene_rng.random() < cap.motion_blur_share else 0
    distance = height * person.stature * cam.scale / fig.body
    return Frame(fig, occluders, occluded, behind, offset, blur, distance)


def _appearance(person: Identity | None, fig: Figure | None, layers: list, mode: str, rng: np.random.Generator,
                ambient: float, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What the camera sees of one thing, painted over ``base``: colour ("rgb"), near-IR reflectance ("nir")
    or temperature ("thermal"); and where it is (a boolean mask). Version 5's local physics: a fabric's
    reflectance varies across it (weave, folds), and in thermal each pixel's temperature comes from its
    part's insulation and its contact with the body, not from its colour."""
    img, where = base.copy(), np.zeros(base.shape[:2], bool)
    height, width = where.shape
    insulation = np.zeros((height, width), np.float32)
    skin = np.zeros((height, width), bool)
    for mask, rgb, material, part in layers:
        if mode == "rgb":
            img = np.where(mask[..., None], rgb, img)
        elif mode == "nir":
            img = np.where(mask, 0.1 + 0.8 * np.asarray(material), img)
        else:
            img = np.where(mask, np.asarray(material), img) if person is None else img  # scene objects: temperature
            insulation = np.where(mask, person.insulation.get(part, 0.5), insulation) if person is not None else insulation
            skin = np.where(mask, part == "skin", skin)
        where |= mask
    if fig is None:
        return img, where
    weave = 1 + 0.12 * smooth_noise(rng, height, width, (12, 6))  # folds and weave: per frame, per pixel
    if mode == "thermal":
        material = np.zeros((height, width), np.float32)
        for mask, _, m, _ in layers:
            material = np.where(mask, np.asarray(m, np.float32), material)
        emissivity = 0.92 + 0.08 * (material - 0.5)  # the pattern's fabrics differ a little in emissivity
        temp = thermal_emission(fig.on_body, skin, insulation, ambient, fig.body) * emissivity * weave ** 0.5
        img = np.where(fig.on_body, temp * np.sqrt(fig.shade), img)  # grazing angles emit less
    elif mode == "nir":
        img = np.where(fig.on_body, img * fig.shade * weave, img)
    else:
        img = np.where(fig.on_body[..., None], img * (fig.shade * (0.5 + 0.5 * weave))[..., None], img)
    return img, where


def _render_capture(person: Identity, cam: Camera, rng: np.random.Generator, height: int, width: int,
                    infrared: bool, cap: Capture) -> np.ndarray:
    """One version-5 image: the scene window, clutter and bystanders behind, the walker (motion-blurred
    in some frames), occluders in front; near-IR lit by the camera's illuminator, thermal by emission."""
    frame = _frame(person, cam, rng, height, width, cap)
    scene = cam.scene
    mode = "rgb" if not infrared else "thermal" if cam.thermal else "nir"
    look = np.random.default_rng(rng.integers(2 ** 63))
    bg_rgb, bg_ir = scene_window(scene, frame.offset, width)
    bg = bg_rgb if mode == "rgb" else bg_ir
    for who, fig, layers in frame.behind:
        bg, _ = _appearance(who, fig, layers, mode, look, scene.ambient, bg)
    fig = frame.figure
    walker, _ = _appearance(person, fig, fig.layers, mode, look, scene.ambient, np.zeros_like(bg))
    if mode == "nir":  # the illuminator: the walker nearer than the scene behind them
        light = near_ir_irradiance(scene, frame.offset, height, width, frame.distance)
        bg, walker = bg * light * scene.depth, walker * light
    alpha = fig.on_body.astype(np.float32)
    if mode == "rgb":
        alpha = alpha[..., None]
    walker = walker * alpha
    if frame.blur:
        walker, alpha = motion_blur(walker, frame.blur), motion_blur(alpha, frame.blur)
    img = walker + (1 - alpha) * bg
    for who, ofig, layers in frame.occluders:
        front, where = _appearance(who, ofig, layers, mode, look, scene.ambient, img)
        if mode == "nir":
            front = front * light * (1.2 if who is not None else 1.0)
        img = np.where(where[..., None] if mode == "rgb" else where, front, img)
    if mode == "rgb":
        img = img * (cam.gain * rng.uniform(0.85, 1.15) * cam.cast * rng.uniform(0.96, 1.04, 3)).astype(np.float32)
        return np.clip(img + rng.normal(0, 0.02, img.shape), 0, 1)
    img = img * cam.gain * rng.uniform(0.85, 1.1) if mode == "nir" else img * rng.uniform(0.9, 1.05) + rng.uniform(-0.05, 0.05)
    pil = Image.fromarray(np.clip(img * 255, 0, 255).astype(np.uint8), "L")
    blurred = np.asarray(pil.filter(ImageFilter.GaussianBlur(cam.blur * height / 128)), np.float32) / 255
    return np.clip(blurred + rng.normal(0, scene.ir_noise, blurred.shape), 0, 1)


def _to_pil(img: np.ndarray) -> Image.Image:
    arr = np.round(img * 255).astype(np.uint8)
    return Image.fromarray(arr, "L" if arr.ndim == 2 else "RGB")


# --------------------------------------------------------------------------------------------------
# Writing the two layouts


@dataclass
class Shot:
    """One image to draw: where it goes (relative to its layout folder) and what `render` needs. Images
    are independent (each has its own RNG stream, keyed by what it shows), so the image writers and
    `write_masks` can walk the same shots and draw the same people."""

    rel: str
    person: Identity
    camera: Camera
    rng_key: list[int]
    infrared: bool
    capture: Capture = CAPTURES[4]

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(self.rng_key)

    def render(self, sizes: Sizes) -> np.ndarray:
        return render(self.person, self.camera, self.rng(), sizes.height, sizes.width, self.infrared, self.capture)

    def silhouette(self, sizes: Sizes, visible: bool = True) -> np.ndarray:
        return silhouette(self.person, self.camera, self.rng(), sizes.height, sizes.width, self.capture, visible)

    def frame(self, sizes: Sizes) -> Frame:
        """What a version-5 image is made of (for measuring the generator, `reid.data.realism`)."""
        return _frame(self.person, self.camera, self.rng(), sizes.height, sizes.width, self.capture)


def _sysu_splits(seed: int, sizes: Sizes) -> dict[str, list[int]]:
    n_ids = sizes.sysu_train_ids + sizes.sysu_val_ids + sizes.sysu_test_ids
    pids = np.random.default_rng([seed, 1, 0]).permutation(np.arange(1, n_ids + 1)).tolist()
    return {
        "train": sorted(pids[:sizes.sysu_train_ids]),
        "val": sorted(pids[sizes.sysu_train_ids:sizes.sysu_train_ids + sizes.sysu_val_ids]),
        "test": sorted(pids[sizes.sysu_train_ids + sizes.sysu_val_ids:]),
    }


def _people(key: list[int], pids: list[int], groups: list[list[int]], cap: Capture) -> dict[int, Identity]:
    """The identities of one layout (``key``: [seed, layout]); from version 5 with marks, insulation and
    look-alike pairs within each of ``groups``."""
    people = {pid: make_identity(np.random.default_rng([*key, 2, pid])) for pid in pids}
    if not cap.marks:
        return people
    for pid in pids:
        extra = np.random.default_rng([*key, 2, pid, 1])
        people[pid] = replace(people[pid], marks=draw_marks(extra), insulation=draw_insulation(extra))
    leaders = lookalike_leaders(groups, np.random.default_rng([*key, 6]), cap.lookalike_share)
    return {pid: dress_alike(p, people[leaders[pid]]) if pid in leaders else p for pid, p in people.items()}


def _with_scene(cam: Camera, key: list[int], cap: Capture, height: int, width: int, thermal: bool) -> Camera:
    if not cap.realistic:
        return cam
    scene = make_scene(np.random.default_rng(key), cam.indoor, thermal, height, width, cap.panorama)
    return replace(cam, scene=scene)


def sysu_shots(seed: int, sizes: Sizes, cap: Capture = CAPTURES[4]) -> Iterator[Shot]:
    """Every SYSU-MM01 image: ``cam<c>/<pid:04d>/<n:04d>.jpg``."""
    n_ids = sizes.sysu_train_ids + sizes.sysu_val_ids + sizes.sysu_test_ids
    cams = {c: _with_scene(make_camera(np.random.default_rng([seed, 1, 1, c]), c in INDOOR, sizes.height, sizes.width),
                           [seed, 1, 1, c, 1], cap, sizes.height, sizes.width, thermal=False)
            for c in range(1, 7)}
    people = _people([seed, 1], list(range(1, n_ids + 1)), list(_sysu_splits(seed, sizes).values()), cap)
    for pid in range(1, n_ids + 1):
        for c in _cameras_of(np.random.default_rng([seed, 1, 3, pid])):
            count = sizes.images_per_ir_camera if c in SYSU_IR else sizes.images_per_rgb_camera
            for n in range(1, count + 1):
                yield Shot(f"cam{c}/{pid:04d}/{n:04d}.jpg", people[pid], cams[c], [seed, 1, 4, pid, c, n],
                           c in SYSU_IR, cap)


def _write_images(root: Path, shots: list[Shot], sizes: Sizes, workers: int, **save) -> None:
    """Render and save ``shots`` under ``root``, in ``workers`` forked processes (each image is drawn from
    its own stream, so the files are the same whatever the number of workers)."""
    def write(part: list[Shot]) -> None:
        for shot in part:
            (root / shot.rel).parent.mkdir(parents=True, exist_ok=True)
            _to_pil(shot.render(sizes)).save(root / shot.rel, **save)

    if workers <= 1:
        return write(shots)
    import multiprocessing

    context = multiprocessing.get_context("fork")  # the shots are inherited, not pickled
    procs = [context.Process(target=write, args=(shots[k::workers],)) for k in range(workers)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    failed = [proc.exitcode for proc in procs if proc.exitcode]
    if failed:
        raise UserError(f"--out {root}: a generation worker failed (exit code {failed[0]}); see the message above")


def write_sysu(root: Path, seed: int, sizes: Sizes, cap: Capture = CAPTURES[4], workers: int = 1) -> None:
    """``cam1..cam6/<pid:04d>/<n:04d>.jpg`` and ``exp/{train,val,test}_id.txt``."""
    (root / "exp").mkdir(parents=True, exist_ok=True)
    for name, ids in _sysu_splits(seed, sizes).items():
        (root / "exp" / f"{name}_id.txt").write_text(",".join(str(i) for i in ids) + "\n")
    _write_images(root, list(sysu_shots(seed, sizes, cap)), sizes, workers, quality=92)


def _cameras_of(rng: np.random.Generator) -> list[int]:
    """Not every identity passes every camera; each has >= 1 indoor RGB camera and >= 1 IR camera."""
    cams = {c for c in range(1, 7) if rng.random() < 0.7}
    if not cams & {1, 2}:
        cams.add(int(rng.choice([1, 2])))
    if not cams & set(SYSU_IR):
        cams.add(int(rng.choice(SYSU_IR)))
    return sorted(cams)


def regdb_shots(seed: int, sizes: Sizes, cap: Capture = CAPTURES[4]) -> Iterator[tuple[int, str, Shot]]:
    """Every RegDB image as ``(pid, modality "v" | "t", shot)``, its file
    ``Visible|Thermal/<pid>/<gender>_<view>_<v|t>_<frame>_<pid>.bmp``."""
    # The visible and thermal cameras of RegDB's rig film one scene: one scene (colours and temperatures).
    cams = {m: _with_scene(make_camera(np.random.default_rng([seed, 2, 1, int(m == "t")]), False, sizes.height,
                                       sizes.width, regdb=True), [seed, 2, 1, 2], cap, sizes.height, sizes.width,
                           thermal=True)
            for m in ("v", "t")}
    pids = list(range(1, sizes.regdb_ids + 1))
    people = _people([seed, 2], pids, [pids], cap)
    frame = 0
    for pid in pids:
        person = people[pid]
        facing = "front" if np.random.default_rng([seed, 2, 3, pid]).random() < 0.5 else "back"
        person.views = np.array([1.0, 0.0, 0.0]) if facing == "front" else np.array([0.0, 1.0, 0.0])
        gender = "female" if person.female else "male"
        for n in range(sizes.regdb_images):
            frame += 1
            # Visible and thermal frames are captured together (same pose), as by RegDB's dual camera:
            # the same RNG stream for both cameras, the same pose seen in the two modalities.
            for m, folder in (("v", "Visible"), ("t", "Thermal")):
                rel = f"{folder}/{pid}/{gender}_{facing}_{m}_{frame:05d}_{pid}.bmp"
                yield pid, m, Shot(rel, person, _same_view(cams[m], person), [seed, 2, 4, pid, n], m == "t", cap)


def write_regdb(root: Path, seed: int, sizes: Sizes, cap: Capture = CAPTURES[4], workers: int = 1) -> None:
    """The RegDB images (see `regdb_shots`) and the ten ``idx`` splits."""
    files: dict[int, dict[str, list[str]]] = {}
    shots = list(regdb_shots(seed, sizes, cap))
    for pid, m, shot in shots:
        files.setdefault(pid, {"v": [], "t": []})[m].append(shot.rel)
    _write_images(root, [shot for _, _, shot in shots], sizes, workers)
    (root / "idx").mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        order = np.random.default_rng([seed, 2, 5, split]).permutation(np.arange(1, sizes.regdb_ids + 1))
        half = sizes.regdb_ids // 2
        for part, ids in (("train", sorted(order[:half].tolist())), ("test", sorted(order[half:].tolist()))):
            for m, name in (("v", "visible"), ("t", "thermal")):
                lines = [f"{rel} {label}" for label, pid in enumerate(ids) for rel in files[pid][m]]
                (root / "idx" / f"{part}_{name}_{split}.txt").write_text("\n".join(lines) + "\n")


def _same_view(cam: Camera, person: Identity) -> Camera:
    """RegDB walkers face one way: the identity's habit decides the view, not the camera."""
    return replace(cam, views=person.views)


# --------------------------------------------------------------------------------------------------
# Public API


def make_synthetic(out: str | Path, seed: int = 0, small: bool = False, version: int = GENERATOR_VERSION,
                   workers: int = 1, **sizes) -> Path:
    """Write ``<out>/SYSU-MM01`` and ``<out>/RegDB`` (replacing them) and a manifest; returns ``out``.
    ``workers`` processes render the images (the files do not depend on it)."""
    out = Path(out)
    spec = Sizes.preset(small, version, **sizes)
    cap = check_version(version)
    manifest = out / MANIFEST
    existing = [out / name for name in (*LAYOUTS, MASKS) if (out / name).exists()]  # masks of old images
    _check_out(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        manifest.write_text(json.dumps({"complete": False}) + "\n")  # marks the folders as ours
    except OSError as err:
        raise UserError(f"--out {out}: cannot write there ({err.strerror or err})") from None
    for target in existing:
        shutil.rmtree(target)
    write_sysu(out / "SYSU-MM01", seed, spec, cap, workers)
    write_regdb(out / "RegDB", seed, spec, cap, workers)
    # Rewritten last: the full manifest means the generation finished. A copy in each layout folder
    # travels with it, so a copied or linked SYSU-MM01/ or RegDB/ still says it is synthetic.
    text = json.dumps(_manifest(seed, spec, version), indent=2) + "\n"
    for name in LAYOUTS:  # whole or not at all: a half-written manifest would read as a broken generation
        write_text_atomically(out / name / MANIFEST, text, "--out")
    write_text_atomically(manifest, text, "--out")
    return out


LAYOUTS = ("SYSU-MM01", "RegDB")
MASKS, MASKS_MANIFEST = "masks", "masks.json"  # <out>/masks/<layout>/<image path>.png, see `write_masks`


def _check_out(out: Path) -> None:
    """Refuse an `--out` that is a file, or that holds anything `reid synth` did not write: a folder
    without our manifest that is not empty, or one with entries besides SYSU-MM01/, RegDB/, masks/ and the
    manifest (`reid synth` replaces those folders: it must never delete or relabel someone's data)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    if not out.is_dir():
        return
    entries = sorted(p.name for p in out.iterdir())
    if not entries:
        return
    if not (out / MANIFEST).is_file():
        raise UserError(f"--out {out}: holds {entries[0]!r} but no {MANIFEST} (it was not written by "
                        "`reid synth`); refusing to overwrite or relabel it: choose an empty or new folder")
    foreign = [name for name in entries if name not in (*LAYOUTS, MASKS, MANIFEST)]
    if foreign:
        raise UserError(f"--out {out}: holds {foreign[0]!r}, which `reid synth` did not write; refusing to overwrite "
                        "or relabel it: choose an empty or new folder")


def _manifest(seed: int, sizes: Sizes, version: int = GENERATOR_VERSION) -> dict:
    return {"generator_version": version, "seed": seed, "sizes": asdict(sizes)}


def _generated(root: Path, wanted: dict) -> bool:
    try:
        return json.loads((root / MANIFEST).read_text()) == wanted
    except (OSError, ValueError):
        return False


def ensure_synthetic(root: str | Path, seed: int = 0, small: bool = False, version: int = GENERATOR_VERSION,
                     workers: int = 1, **sizes) -> Path:
    """Generate into ``root`` unless a finished generation with the same settings is already there."""
    root = Path(root)
    wanted = _manifest(seed, Sizes.preset(small, version, **sizes), version)
    if not _generated(root, wanted):
        # Two processes that both need the set (make test's notebooks beside its tests, two notebooks, a
        # sweep's jobs) must not write it at once: one generates, the others wait, then find it finished.
        try:
            root.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(f"--out {root}: cannot write there ({err.strerror or err})") from None
        with file_lock(root.parent / f".{root.name}.lock"):
            if not _generated(root, wanted):
                return make_synthetic(root, seed, small, version, workers, **sizes)
    for name in LAYOUTS:  # a generation from before the layout folders carried the manifest
        try:
            if not (root / name / MANIFEST).is_file():
                (root / name / MANIFEST).write_text((root / MANIFEST).read_text())
        except OSError:  # a read-only copy: it is still found through its parent
            pass
    return root


# --------------------------------------------------------------------------------------------------
# Person masks: a sidecar, outside the layouts (the readers and the real-data path never see it)


def mask_path(masks: str | Path, layout: str, rel: str | Path) -> Path:
    """Where `write_masks` puts the mask of image ``rel`` (relative to its layout folder ``layout``)."""
    return Path(masks) / layout / Path(rel).with_suffix(".png")


def _finished_manifest(root: Path) -> dict:
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        raise UserError(f"{root}: no finished synthetic set (no readable {MANIFEST}); make one with "
                        "`python -m reid synth`") from None
    if manifest.get("generator_version") not in VERSIONS or "seed" not in manifest:
        raise UserError(f"{root}: made by synthetic generator {manifest.get('generator_version')!r}, this code draws "
                        f"versions {list(VERSIONS)}: its people cannot be redrawn; regenerate the set")
    return manifest


def write_masks(root: str | Path, out: str | Path | None = None) -> Path:
    """Write the person mask of every image of the synthetic set at ``root`` (the folder holding
    SYSU-MM01/ and RegDB/) and return the masks folder ``out`` (default ``<root>/masks``).

    Each mask is a 1-bit PNG at the image's size, ``<out>/<layout>/<image path>.png``, True on the person
    (`silhouette`). The people are drawn again from the manifest's seed and sizes with the very RNG
    streams of the images (`sysu_shots`, `regdb_shots`), so no image is read or written and an existing
    set gets its masks without being regenerated. ``<out>/masks.json``, a copy of the set's manifest
    written last, says which generation the masks belong to; the set's own manifest (which run folders
    hash) is left as it is.
    """
    root = Path(root)
    manifest = _finished_manifest(root)
    out = Path(out) if out is not None else root / MASKS
    layouts = [(root / name).resolve() for name in LAYOUTS]
    if (out / MANIFEST).exists() or any(out.resolve() == p or p in out.resolve().parents for p in layouts):
        raise UserError(f"masks folder {out}: it is a dataset folder; the masks must stay outside the layouts")
    seed, sizes, cap = manifest["seed"], Sizes(**manifest["sizes"]), CAPTURES[manifest["generator_version"]]
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / MASKS_MANIFEST).unlink(missing_ok=True)  # unfinished until rewritten
    except OSError as err:
        raise UserError(f"masks folder {out}: cannot write there ({err.strerror or err})") from None
    shots = [("SYSU-MM01", shot) for shot in sysu_shots(seed, sizes, cap)]
    shots += [("RegDB", shot) for _, _, shot in regdb_shots(seed, sizes, cap)]
    for layout, shot in shots:
        path = mask_path(out, layout, shot.rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(shot.silhouette(sizes)).save(path)
    write_text_atomically(out / MASKS_MANIFEST, json.dumps(manifest, indent=2) + "\n", "--out")
    return out


def ensure_masks(root: str | Path, out: str | Path | None = None) -> Path:
    """The masks folder of the synthetic set at ``root`` (default ``<root>/masks``), written by
    `write_masks` unless masks of this very generation are already there."""
    root = Path(root)
    out = Path(out) if out is not None else root / MASKS
    try:
        done = json.loads((out / MASKS_MANIFEST).read_text()) == _finished_manifest(root)
    except (OSError, ValueError):
        done = False
    return out if done else write_masks(root, out)


def summarize(root: str | Path) -> str:
    """Human-readable counts per dataset, split, camera and modality."""
    from reid.data.regdb import RegDB
    from reid.data.sysu import SYSUMM01

    root = Path(root)
    lines = [f"synthetic dataset at {root}"]
    manifest = root / MANIFEST
    if manifest.is_file():
        lines.append(f"  generator: {json.dumps(json.loads(manifest.read_text()))}")
    sysu = SYSUMM01(root / "SYSU-MM01")
    lines.append(f"SYSU-MM01: {len(sysu.train_ids)} train+val ids, {len(sysu.test_ids)} test ids")
    train_cams = Counter(cam for _, _, cam in sysu.train)
    lines.append("  train images per camera: " + ", ".join(
        f"cam{c}{'(IR)' if c in sysu.ir_cameras else ''}={train_cams[c]}" for c in sorted(train_cams)))
    n_ir = sum(v for c, v in train_cams.items() if c in sysu.ir_cameras)
    lines.append(f"  train: {len(sysu.train) - n_ir} visible + {n_ir} infrared images")
    for mode in ("all", "indoor"):
        lines.append(f"  {mode}-search: query {len(sysu.query(mode))} IR images, "
                     f"gallery {len(sysu.gallery(mode, 0, 1))} (single-shot) / "
                     f"{len(sysu.gallery(mode, 0, 10))} (multi-shot) RGB images")
    regdb = RegDB(root / "RegDB", split=1)
    mods = Counter("thermal" if cam in regdb.ir_cameras else "visible" for _, _, cam in regdb.train)
    lines.append(f"RegDB (split 1): {regdb.num_train_pids} train ids "
                 f"({mods['visible']} visible + {mods['thermal']} thermal), "
                 f"test {len(regdb.query('v2t'))} visible / {len(regdb.gallery('v2t'))} thermal images")
    return "\n".join(lines)
