"""How the synthetic pedestrians are *captured* (generator version 5): the crop of a detector, a scene that
changes from frame to frame, occluders, and the physics of the two infrared modalities, each a named
parameter of `Capture`.

Why each property, from what the real images are (docs/synthetic.md has the table with measured values):

- SYSU-MM01 and RegDB images are pedestrian-detector crops from video, so the person is not centred at a
  fixed scale: the box is loose or tight, off by a fraction of its width, and cuts feet or head now and then
  (`centre_range`, `height_range`, `feet_range`);
- the person walks through the scene, so the background behind them changes from frame to frame while the
  camera stays the same: each camera films a scene wider than one crop (`panorama` crop widths) and every
  frame sees the window around the walker, plus things that come and go (`clutter` objects, other
  pedestrians behind, `bystander_share`);
- crowds and street furniture hide part of the body in a good share of real crops (`occlusion_share`: a
  pole, a car or bench, another person, a suitcase in front);
- identities are told apart by details (a logo, a strap, glasses, shoes) once clothing is alike, and many
  people dress alike (`marks`, `lookalike_share`; in `synthetic.py`, where identities are drawn);
- near-infrared (SYSU-MM01 cameras 3 and 6) images *reflectance under the camera's own illuminator*: the
  lit spot falls off away from its axis and with distance, each camera has its own gain and noise, and a
  fabric's reflectance varies across it (weave, folds); thermal (RegDB) images *emission*: skin is warm,
  clothing is as warm as it is thin and close to the body, the scene as warm as its objects
  (`local_physics`);
- walkers move during the exposure (`motion_blur_share`) and do not all swing their arms (`pose_variety`).

Every function here is pure numpy on float arrays in [0, 1]; the random draws come from the generator the
caller passes, so `synthetic.py` keeps its byte-identical-per-seed contract.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter


@dataclass(frozen=True)
class Capture:
    """The capture properties of one generator version. Version 4's values reproduce its images exactly
    (a property at its "off" value draws nothing)."""

    centre_range: tuple[float, float] = (0.42, 0.58)  # person's horizontal centre, fraction of the width
    height_range: tuple[float, float] = (0.93, 1.05)  # person height per image, times the camera's scale
    feet_range: tuple[float, float] = (0.92, 1.0)  # feet line, fraction of the height (> 1: cut by the crop)
    truncation: bool = False  # may the crop cut the person (feet below, head above the frame)?
    panorama: float = 1.0  # the camera's scene in crop widths; 1: one fixed background a camera
    clutter: float = 0.0  # mean number of objects that come and go in front of the scene, per frame
    bystander_share: float = 0.0  # share of frames with part of another pedestrian behind the person
    occlusion_share: float = 0.0  # share of frames with an occluder in front of part of the person
    marks: bool = False  # small identity marks: logo, strap, glasses, wristband (shoes always differ)
    lookalike_share: float = 0.0  # share of identities that wear the same outfit as another identity
    local_physics: bool = False  # near-IR as lit reflectance, thermal as emission, varying across a garment
    motion_blur_share: float = 0.0  # share of frames with the walker blurred by motion
    pose_variety: bool = False  # arm poses beyond the swing: phone at the ear, hand in pocket, carrying

    @property
    def realistic(self) -> bool:
        """Version 5 and later: the scene, occluders and modality physics of `render_capture`."""
        return self.panorama > 1.0 or self.local_physics


CAPTURES = {
    4: Capture(),
    # Fixed from the real-data arguments above before any Table 3/4 row was trained on it; never tuned on an
    # ablation result (docs/synthetic.md).
    5: Capture(centre_range=(0.35, 0.65), height_range=(0.8, 1.15), feet_range=(0.88, 1.04), truncation=True,
               panorama=4.0, clutter=2.0, bystander_share=0.3, occlusion_share=0.25, marks=True,
               lookalike_share=0.3, local_physics=True, motion_blur_share=0.2, pose_variety=True),
}
OCCLUDERS = ("pole", "car", "person", "suitcase")


# --------------------------------------------------------------------------------------------------
# Small numpy helpers


def smooth_noise(rng: np.random.Generator, height: int, width: int, cells: tuple[int, int] = (6, 3)) -> np.ndarray:
    """A smooth random field in [-1, 1]: a coarse grid of uniform values, bilinearly upsampled."""
    coarse = rng.uniform(-1, 1, cells).astype(np.float32)
    img = Image.fromarray(coarse, "F").resize((width, height), Image.BILINEAR)
    return np.asarray(img, np.float32)


def shift_x(a: np.ndarray, dx: int, fill=0) -> np.ndarray:
    """``a`` moved ``dx`` pixels to the right along its second axis, ``fill`` where it came from."""
    out = np.full_like(a, fill)
    if abs(dx) >= a.shape[1]:
        return out
    if dx >= 0:
        out[:, dx:] = a[:, :a.shape[1] - dx]
    else:
        out[:, :dx] = a[:, -dx:]
    return out


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a float (H, W) image, edges repeated."""
    return gaussian_filter(img.astype(np.float32), sigma, mode="nearest")


def motion_blur(img: np.ndarray, length: int) -> np.ndarray:
    """A horizontal box blur of ``length`` pixels (the walker's displacement during the exposure), along
    the image's second axis, edges repeated."""
    if length <= 1:
        return img
    pad = [(0, 0)] * img.ndim
    pad[1] = (length // 2, length - 1 - length // 2)
    padded = np.pad(img, pad, mode="edge")
    csum = np.cumsum(padded, axis=1, dtype=np.float64)
    csum = np.concatenate([np.zeros_like(csum[:, :1]), csum], axis=1)
    return ((csum[:, length:] - csum[:, :-length]) / length).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# The scene: a panorama per camera, a window per frame, objects that come and go


@dataclass
class Scene:
    """A camera's wide scene: visible colours (H, P, 3), near-IR reflectance or thermal temperature (H, P)."""

    rgb: np.ndarray
    ir: np.ndarray
    horizon: float
    ir_spot: tuple[float, float]  # near-IR: the illuminator's axis (row, column) as fractions of the panorama
    ir_noise: float  # the sensor's noise, per camera
    depth: float  # how much less light the scene gets than the walker (it is farther from the illuminator)
    ambient: float  # thermal: the scene's air temperature, on the image's scale


def _scene_colour(rng, indoor: bool):
    import colorsys

    sat, val = ((0.05, 0.35), (0.3, 0.85)) if indoor else ((0.1, 0.5), (0.3, 0.95))
    return np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(*sat), rng.uniform(*val)), np.float32)


def make_scene(rng: np.random.Generator, indoor: bool, thermal: bool, height: int, width: int,
               panorama: float) -> Scene:
    """A wide scene of walls, floor, doors, windows, poles and textures; in infrared its own reflectance
    (near-IR: unrelated to the colours) or temperature (thermal: a cool scene with warm and cold objects)."""
    span = round(width * panorama)
    yy, xx = np.mgrid[0:height, 0:span].astype(np.float32)
    yy, xx = yy / height, xx / span
    horizon = rng.uniform(0.5, 0.75)
    wall, floor = _scene_colour(rng, indoor), _scene_colour(rng, indoor) * 0.8
    rgb = np.where((yy < horizon)[..., None], wall, floor) * (0.85 + 0.3 * yy[..., None])
    ambient = rng.uniform(0.1, 0.3)  # thermal: the scene's temperature on the image's scale
    ir = np.where(yy < horizon, rng.uniform(0.15, 0.5) if not thermal else ambient,
                  rng.uniform(0.15, 0.5) if not thermal else ambient + rng.uniform(-0.05, 0.1))
    # Floor texture (tiles or paving): lines in both colour and infrared.
    tile = rng.uniform(0.04, 0.1)
    lines = (yy > horizon) & (((xx * panorama / tile) % 1 < 0.08) | (((yy - horizon) / tile * 2) % 1 < 0.08))
    rgb = np.where(lines[..., None], rgb * 0.8, rgb)
    ir = np.where(lines, ir * (0.97 if thermal else 0.85), ir)
    # Structures along the scene: doors, windows, pillars, trees, shop fronts, each with its own infrared.
    for _ in range(int(rng.integers(4, 9) * panorama / 4) + 1):
        x0, w = rng.uniform(0, 1), rng.uniform(0.02, 0.08)
        y0 = rng.uniform(0.0, horizon * 0.6)
        y1 = horizon + rng.uniform(-0.1, 0.05) if rng.random() < 0.7 else rng.uniform(y0 + 0.1, horizon)
        region = (xx > x0) & (xx < x0 + w) & (yy > y0) & (yy < y1)
        rgb = np.where(region[..., None], _scene_colour(rng, indoor) * rng.uniform(0.6, 1.1), rgb)
        value = ambient + rng.uniform(-0.08, 0.25) if thermal else rng.uniform(0.05, 0.8)
        ir = np.where(region, value, ir)
    for _ in range(int(rng.integers(0, 3))):  # a hot or shiny thing: radiator, lamp, sunlit patch, engine
        cy, cx = rng.uniform(0.1, 0.9), rng.uniform(0, 1)
        ir = ir + rng.uniform(0.2, 0.45) * np.exp(-(((yy - cy) / 0.08) ** 2 + ((xx - cx) * panorama / 0.15) ** 2))
    return Scene(np.clip(rgb, 0, 1).astype(np.float32), np.clip(ir, 0, 1).astype(np.float32), float(horizon),
                 (rng.uniform(0.35, 0.6), rng.uniform(0.2, 0.8)), rng.uniform(0.02, 0.05), rng.uniform(0.6, 0.9),
                 float(ambient))


def scene_window(scene: Scene, offset: float, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The crop of the scene at ``offset`` (a fraction of the free span) that one frame sees."""
    x0 = round(offset * (scene.rgb.shape[1] - width))
    return scene.rgb[:, x0:x0 + width].copy(), scene.ir[:, x0:x0 + width].copy()


def clutter_objects(rng: np.random.Generator, count: int, horizon: float, height: int, width: int, thermal: bool):
    """``count`` objects that come and go between the scene and the walker (bins, signs, bicycles' frames,
    plants, parked things): ``[(mask, rgb, ir)]``, drawn behind the person."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    yy, xx = yy / height, xx / width
    out = []
    for _ in range(count):
        cx, cy = rng.uniform(-0.1, 1.1), rng.uniform(horizon - 0.2, 0.98)
        ry, rx = rng.uniform(0.04, 0.15), rng.uniform(0.05, 0.3)
        mask = (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1) if rng.random() < 0.5 else \
            (np.abs(yy - cy) < ry) & (np.abs(xx - cx) < rx)
        ir = rng.uniform(0.05, 0.45) if thermal else rng.uniform(0.05, 0.9)
        out.append((mask, _scene_colour(rng, False), ir))
    return out


def occluder(rng: np.random.Generator, kind: str, person_cx: float, feet: float, body: float, height: int,
             width: int, thermal: bool):
    """A thing in front of part of the person: ``(mask, rgb, ir)``. ``"person"`` is drawn by the caller (it
    needs an identity); here the pole, the car (or bench) and the suitcase."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    if kind == "pole":  # a pillar, lamp post or tree trunk across the body
        half = width * rng.uniform(0.05, 0.12)
        x = person_cx + rng.uniform(-0.6, 0.6) * body * 0.2
        mask = np.abs(xx - x) <= half
    elif kind == "car":  # a parked car, a bench, a barrier: the lower body hidden
        top = feet - body * rng.uniform(0.25, 0.5)
        mask = (yy >= top) & (yy < top + body * rng.uniform(0.3, 0.6)) if rng.random() < 0.3 else yy >= top
        mask &= np.abs(xx - person_cx - rng.uniform(-0.3, 0.3) * width) < width * rng.uniform(0.3, 0.8)
    elif kind == "suitcase":  # carried or standing luggage in front of the legs
        cx = person_cx + rng.uniform(-0.15, 0.15) * body
        mask = (np.abs(xx - cx) < body * rng.uniform(0.08, 0.14)) & (yy > feet - body * rng.uniform(0.2, 0.35)) & \
            (yy < feet)
    else:
        raise ValueError(f"unknown occluder {kind!r}")
    warm = thermal and kind == "car" and rng.random() < 0.5  # a car that just drove: warm bonnet
    ir = rng.uniform(0.5, 0.8) if warm else rng.uniform(0.05, 0.35) if thermal else rng.uniform(0.05, 0.9)
    return mask, _scene_colour(rng, False), ir


# --------------------------------------------------------------------------------------------------
# Infrared physics


def near_ir_irradiance(scene: Scene, offset: float, height: int, width: int, distance: float) -> np.ndarray:
    """The camera's illuminator on one frame: a spot around its axis (fixed in the scene, so it moves
    across crops as the walker does) falling off with the inverse square of the walker's ``distance``
    (1 = the camera's usual distance)."""
    span = scene.rgb.shape[1]
    x0 = offset * (span - width)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    sy, sx = scene.ir_spot
    r2 = ((yy / height - sy) / 0.9) ** 2 + ((xx + x0 - sx * span) / (0.45 * span)) ** 2
    # A spot on top of the light scattered around it: the frame's corners get about half the centre's.
    return ((0.5 + 0.7 * np.exp(-r2)) / distance ** 2).astype(np.float32)


def thermal_emission(on_body: np.ndarray, skin: np.ndarray, insulation: np.ndarray, ambient: float,
                     body_px: float) -> np.ndarray:
    """Temperature on the image's scale of each body pixel: skin is warm (0.9); clothing sits between the
    skin and the ambient temperature by its insulation, and is warmer where it touches the body (its core)
    than where it hangs loose (edges, skirts, bags): the contact is the body mask blurred at a tenth of
    the body's height. ``insulation`` is an (H, W) map: 0 bare skin, 1 no heat gets through."""
    contact = gaussian_blur(on_body.astype(np.float32), max(body_px * 0.04, 1.0))
    contact = np.clip((contact - 0.3) / 0.6, 0, 1)
    warm = 0.9
    cloth = ambient + (warm - ambient) * (1 - insulation) * (0.55 + 0.45 * contact)
    return np.where(skin, warm, cloth).astype(np.float32)
