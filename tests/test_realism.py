"""The realism table (reid.data.realism): each capture property measured on generated images, version 4 against 5."""

from __future__ import annotations

import pytest

from reid.data.realism import measure_capture, realism_table, same_people
from reid.data.synthetic import Sizes

SIZES = {"sysu_train_ids": 20, "sysu_val_ids": 2, "sysu_test_ids": 8, "images_per_rgb_camera": 2,
         "images_per_ir_camera": 2, "regdb_ids": 30, "regdb_images": 2}


def measured(version: int) -> dict[str, str]:
    """{parameter: measured value}, and {property: value} for the rows of a parameter measured several ways."""
    rows = measure_capture(version, seed=1, sample=120, sizes=Sizes.preset(version=version, **SIZES))
    return {r["parameter"]: r["value"] for r in rows} | {r["property"]: r["value"] for r in rows}


def row(values: dict[str, str], words: str) -> float:
    (value,) = [v for k, v in values.items() if words in k]
    return float(value.split()[0])


@pytest.fixture(scope="module")
def v4_v5():
    return measured(4), measured(5)


def span(text: str) -> float:
    lo, hi = (float(v) for v in text.split("-"))
    return hi - lo


def percent(text: str) -> float:
    return float(text.split("%")[0])


def test_version_5_places_the_person_like_a_detector_crop(v4_v5):
    v4, v5 = v4_v5
    assert span(v5["centre_range"]) > 1.5 * span(v4["centre_range"])
    assert span(v5["height_range"]) > span(v4["height_range"])
    assert percent(v4["truncation, feet_range"]) < 2 < percent(v5["truncation, feet_range"]) < 40


def test_version_5_changes_the_background_and_hides_part_of_the_person(v4_v5):
    v4, v5 = v4_v5
    assert float(v5["panorama, clutter"]) > 1.5 * float(v4["panorama, clutter"])
    assert percent(v4["occlusion_share"]) == 0 and 12 < percent(v5["occlusion_share"]) < 40
    for parameter in ("bystander_share", "motion_blur_share", "pose_variety"):
        assert 10 < percent(v5[parameter]) < 50 and parameter not in v4


def test_version_5_has_lookalikes_and_fine_marks(v4_v5):
    v4, v5 = v4_v5
    assert percent(v4["lookalike_share"]) == 0 and 20 < percent(v5["lookalike_share"]) < 40
    assert 3 < float(v5["marks"]) < 10  # a few pixels at the model's 96x48: fine, not invisible


def test_version_5_infrared_physics(v4_v5):
    """Thermal shows temperature: a printed top's two fabrics, which differ in colour and near-IR, look nearly
    alike (version 4 drew them by material, as near-IR); skin stays warmer than clothing. Near-IR reflectance
    varies across one fabric (weave, folds, the illuminator's spot)."""
    v4, v5 = v4_v5
    assert row(v5, "printed top") < 0.3 * row(v4, "printed top")
    assert row(v5, "skin minus top") > 0.05
    assert row(v5, "within one fabric") > row(v4, "within one fabric")


def test_realism_table_and_same_people():
    table = realism_table(4, seed=1, sample=20, sizes=Sizes.preset(**SIZES))
    assert table.startswith("| property | parameter | measured | from |") and "`centre_range`" in table
    rows, titles, pids = same_people(2, cameras=(1, 3))
    assert len(rows) == len(pids) == 2 and len(titles) == 4 and all(len(r) == 4 for r in rows)
    assert rows[0][0].ndim == 3 and rows[0][2].ndim == 2  # visible RGB, infrared single-channel
