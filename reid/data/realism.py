"""How realistic the synthetic capture is, measured on generated images: the realism table of
docs/synthetic.md (`python -m reid synth --measure`).

Each row names a `reid.data.capture.Capture` parameter and measures what it does on a sample of the
default-size set (rendered in memory, nothing written): from the images and their person masks where
the property is visible in them (where the person stands, how much is cut or hidden, how much the
background changes, what thermal shows), from the generator's own draws where it is a count of events
(bystanders, blurred frames, arm poses).
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np

from reid.data.synthetic import Sizes, _figure, check_version, regdb_shots, sysu_shots

MODEL_HEIGHT = 96  # the smoke profile's input height: what a mark's size means to the model


def _grow(mask: np.ndarray, px: int = 2) -> np.ndarray:
    out = mask.copy()
    for dy in range(-px, px + 1):
        for dx in range(-px, px + 1):
            out |= np.roll(mask, (dy, dx), axis=(0, 1))
    return out


def measure_capture(version: int, seed: int = 0, sample: int = 300, sizes: Sizes | None = None) -> list[dict]:
    """The realism table of one generator version: ``[{"property", "parameter", "value", "how"}]``."""
    cap = check_version(version)
    sizes = sizes or Sizes.preset(version=version)
    pick = np.random.default_rng([seed, 99])
    shots = list(sysu_shots(seed, sizes, cap))
    chosen = [shots[i] for i in sorted(pick.choice(len(shots), min(sample, len(shots)), replace=False))]
    centre, extent, cut, hidden, frames = [], [], [], [], []  # frames: version 5's draws, one per image
    by_camera: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    for shot in chosen:
        full = shot.silhouette(sizes, visible=False)
        seen = shot.silhouette(sizes)
        rows, cols = np.nonzero(full)
        centre.append(cols.mean() / sizes.width)
        extent.append((rows.max() - rows.min() + 1) / sizes.height)
        frame = shot.frame(sizes) if cap.realistic else None
        if frame is not None:
            frames.append(frame)
        feet, body = (frame.figure.feet, frame.figure.body) if frame else _feet_and_body(shot, sizes)
        cut.append(max(feet - sizes.height, body - feet) > 0.03 * body)  # > 3 % of the body outside
        hidden.append(seen.sum() < 0.95 * full.sum())
        if not shot.infrared:
            by_camera.setdefault(int(shot.rel[3]), []).append(  # cam<c>/<pid>/<n>.jpg
                (shot.render(sizes).mean(axis=-1), _grow(full)))
    # Background change within a camera: mean |difference| between consecutive frames, off both people.
    change = [np.abs(a - b)[~(ma | mb)].mean() for frames in by_camera.values()
              for (a, ma), (b, mb) in pairwise(frames)]
    rows = [
        ("person's horizontal centre (5-95 % of the width)", "centre_range",
         f"{np.percentile(centre, 5):.2f}-{np.percentile(centre, 95):.2f}", "masks"),
        ("person's height (5-95 % of the frame)", "height_range",
         f"{np.percentile(extent, 5):.2f}-{np.percentile(extent, 95):.2f}", "masks"),
        ("person cut by the crop (> 3 % of the body outside)", "truncation, feet_range", f"{np.mean(cut):.1%}",
         "geometry"),
        ("background change between frames of a camera (mean |Δ|, visible)", "panorama, clutter",
         f"{np.mean(change):.3f}", "images + masks"),
        ("images with part of the person hidden (> 5 % of the body)", "occlusion_share", f"{np.mean(hidden):.1%}",
         "masks: visible vs whole person"),
    ]
    if cap.realistic:
        rows += [
            ("images with another pedestrian behind", "bystander_share",
             f"{np.mean([any(who is not None for who, _, _ in f.behind) for f in frames]):.1%}", "draws"),
            ("motion-blurred images", "motion_blur_share", f"{np.mean([f.blur > 0 for f in frames]):.1%}", "draws"),
            ("arm poses other than the swing", "pose_variety",
             f"{np.mean([f.figure.arm_pose != 'swing' for f in frames]):.1%}", "draws"),
        ]
    people = {shot.rel.split('/')[1]: shot.person for shot in shots}
    tops = [id(p.top) for p in people.values()]
    alike = np.mean([tops.count(t) > 1 for t in tops])
    rows.append(("identities dressed like another identity", "lookalike_share", f"{alike:.1%}", "identities"))
    if cap.marks:
        logo = [p.marks.logo_size * p.stature * MODEL_HEIGHT for p in people.values() if p.marks.logo_side]
        rows.append(("identity marks: logo height at the model's 96x48 (mean px)", "marks", f"{np.mean(logo):.1f}",
                     "identities"))
    rows += _modality_rows(seed, sizes, cap)
    rows.append(("test identities (SYSU-MM01 layout)", "Sizes.sysu_test_ids", str(sizes.sysu_test_ids), "sizes"))
    return [dict(zip(("property", "parameter", "value", "how"), row)) for row in rows]


def _modality_rows(seed: int, sizes: Sizes, cap) -> list[tuple]:
    """Infrared physics on the tops of a sample of people: near-IR (SYSU) reflectance varies across one
    fabric (weave, folds, the illuminator's spot); thermal (RegDB) shows temperature, so a print's two
    fabrics, which differ in colour and near-IR, are nearly alike, and skin is warmer than clothing."""
    nir_spread, thermal_print, skin_minus_top = [], [], []
    for shot in list(sysu_shots(seed, sizes, cap))[::25] + [s for _, m, s in regdb_shots(seed, sizes, cap) if m == "t"][::5]:
        if not shot.infrared:
            continue
        img = shot.render(sizes)
        layers = shot.frame(sizes).figure.layers if cap.realistic else _figure_layers(shot, sizes)
        seen = shot.silhouette(sizes)
        top = {"primary": np.zeros(img.shape, bool), "secondary": np.zeros(img.shape, bool)}
        skin = np.zeros(img.shape, bool)
        for mask, _, material, part in layers:
            top = {key: region & ~mask for key, region in top.items()}  # a later layer covers it
            skin = np.where(mask, part == "skin", skin)
            if part == "top" and np.ndim(material) == 2:
                primary = np.isclose(material, shot.person.top.materials[0])
                top["primary"] |= mask & primary
                top["secondary"] |= mask & ~primary
        inside = {k: v & seen & ~_grow(~v, 2) for k, v in top.items()}  # away from edges the blur mixes
        skin &= seen & ~_grow(~skin, 1)
        if not shot.camera.thermal and inside["primary"].sum() >= 20:
            nir_spread.append(img[inside["primary"]].std())
        if shot.camera.thermal and min(v.sum() for v in inside.values()) >= 10:
            thermal_print.append(abs(img[inside["primary"]].mean() - img[inside["secondary"]].mean()))
        if shot.camera.thermal and skin.sum() >= 5 and inside["primary"].sum() >= 20:
            skin_minus_top.append(img[skin].mean() - img[inside["primary"]].mean())
    return [("near-IR: brightness sd within one fabric of a top", "local_physics", f"{np.mean(nir_spread):.3f}",
             "SYSU IR images"),
            ("thermal: contrast between a printed top's two fabrics", "local_physics",
             f"{np.mean(thermal_print):.3f} (n={len(thermal_print)})", "RegDB thermal images"),
            ("thermal: skin minus top brightness (mean)", "local_physics", f"{np.mean(skin_minus_top):+.3f}",
             "RegDB thermal images")]


def _figure_layers(shot, sizes):
    return _figure(shot.person, shot.camera, shot.rng(), sizes.height, sizes.width, shot.capture).layers


def _feet_and_body(shot, sizes):
    fig = _figure(shot.person, shot.camera, shot.rng(), sizes.height, sizes.width, shot.capture)
    return fig.feet, fig.body


def realism_table(version: int, **kwargs) -> str:
    """`measure_capture` as a Markdown table."""
    lines = ["| property | parameter | measured | from |", "| --- | --- | --- | --- |"]
    lines += [f"| {r['property']} | `{r['parameter']}` | {r['value']} | {r['how']} |"
              for r in measure_capture(version, **kwargs)]
    return "\n".join(lines)


def same_people(count: int = 4, versions: tuple[int, ...] = (4, 5), seed: int = 0,
                cameras: tuple[int, ...] = (1, 4, 3, 6)) -> tuple[list[list[np.ndarray]], list[str], list[int]]:
    """The same SYSU-MM01-layout shots (identity, camera, image number) drawn by each generator version, for
    the first ``count`` identities seen by every camera of ``cameras``: one row per identity, columns camera
    by camera and version by version; with the column titles and the identities. An identity's body,
    clothes, pose and camera visits come from the same draws in every version, so the columns differ by
    what the capture adds (and, from version 5, its marks and a look-alike's outfit)."""
    drawn: dict[int, dict[tuple[int, int], np.ndarray]] = {}
    for version in versions:
        cap = check_version(version)
        sizes = Sizes.preset(version=version)
        for shot in sysu_shots(seed, sizes, cap):
            pid, cam = int(shot.rel.split("/")[1]), int(shot.rel[3])
            if cam in cameras and shot.rel.endswith("0001.jpg"):
                drawn.setdefault(pid, {})[(cam, version)] = shot.render(sizes)
    columns = [(c, v) for c in cameras for v in versions]
    pids = sorted(pid for pid, images in drawn.items() if all(col in images for col in columns))[:count]
    return ([[drawn[pid][col] for col in columns] for pid in pids],
            [f"cam{c}{' IR' if c in (3, 6) else ''}\nv{v}" for c, v in columns], pids)
