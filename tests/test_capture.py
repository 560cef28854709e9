"""The capture physics of generator version 5 (reid.data.capture), each function on inputs whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from reid.data.capture import (
    CAPTURES,
    OCCLUDERS,
    Capture,
    make_scene,
    motion_blur,
    near_ir_irradiance,
    occluder,
    scene_window,
    shift_x,
    thermal_emission,
)


def test_version_4_capture_is_the_default_and_draws_nothing_new():
    assert CAPTURES[4] == Capture() and not CAPTURES[4].realistic
    v5 = CAPTURES[5]
    assert v5.realistic and v5.truncation and v5.marks and v5.local_physics
    assert v5.centre_range[1] - v5.centre_range[0] > Capture().centre_range[1] - Capture().centre_range[0]


def test_shift_x_moves_and_fills():
    a = np.arange(12).reshape(2, 6)
    assert shift_x(a, 2)[0].tolist() == [0, 0, 0, 1, 2, 3]
    assert shift_x(a, -2)[0].tolist() == [2, 3, 4, 5, 0, 0]
    assert not shift_x(a, 6).any() and not shift_x(a, -9).any()


def test_motion_blur_spreads_an_impulse_over_its_length_and_keeps_the_mean():
    img = np.zeros((1, 21), np.float32)
    img[0, 10] = 1.0
    out = motion_blur(img, 5)
    assert np.count_nonzero(out) == 5 and np.isclose(out.sum(), 1.0) and np.allclose(out[out > 0], 0.2)
    assert motion_blur(img, 1) is img


def test_thermal_skin_is_warmest_insulation_cools_and_the_core_is_warmer_than_the_edge():
    h, w = 64, 32
    body = np.zeros((h, w), bool)
    body[8:56, 8:24] = True
    skin = np.zeros_like(body)
    skin[8:14, 12:20] = True
    thin = thermal_emission(body, skin, np.where(body, 0.2, 0), 0.2, 48.0)
    thick = thermal_emission(body, skin, np.where(body, 0.9, 0), 0.2, 48.0)
    assert thin[skin].min() == pytest.approx(0.9) and thin[30, 16] < 0.9
    assert thick[30, 16] < thin[30, 16]  # a padded jacket is cooler than a shirt
    assert thin[30, 16] > thin[30, 8]  # the body's core is warmer than a loose edge
    assert thick[30, 16] > 0.2  # never below the air


def test_near_ir_light_falls_off_with_distance_and_away_from_the_illuminator():
    scene = make_scene(np.random.default_rng(0), indoor=True, thermal=False, height=64, width=32, panorama=4.0)
    near = near_ir_irradiance(scene, 0.5, 64, 32, distance=1.0)
    far = near_ir_irradiance(scene, 0.5, 64, 32, distance=1.25)
    assert np.allclose(far, near / 1.25 ** 2)
    spot_column = scene.ir_spot[1] * scene.rgb.shape[1]
    on, off = near_ir_irradiance(scene, spot_column / (scene.rgb.shape[1] - 32), 64, 32, 1.0), \
        near_ir_irradiance(scene, 0.0 if scene.ir_spot[1] > 0.5 else 1.0, 64, 32, 1.0)
    assert on.mean() > off.mean()


def test_a_frame_sees_a_window_of_its_cameras_scene():
    scene = make_scene(np.random.default_rng(1), indoor=False, thermal=True, height=64, width=32, panorama=4.0)
    assert scene.rgb.shape == (64, 128, 3) and scene.ir.shape == (64, 128)
    left, right = scene_window(scene, 0.0, 32), scene_window(scene, 1.0, 32)
    assert np.array_equal(left[0], scene.rgb[:, :32]) and np.array_equal(right[1], scene.ir[:, -32:])
    assert not np.array_equal(left[0], right[0])


@pytest.mark.parametrize("kind", [k for k in OCCLUDERS if k != "person"])
def test_each_occluder_covers_part_of_the_person(kind):
    h, w = 128, 64
    person = np.zeros((h, w), bool)
    person[20:120, 22:42] = True
    hits = [(occluder(np.random.default_rng(i), kind, 32.0, 120.0, 100.0, h, w, thermal=False)[0] & person).mean()
            for i in range(20)]
    assert min(hits) > 0 and max(hits) < person.mean()  # some of the person hidden, never all of it
    with pytest.raises(ValueError):
        occluder(np.random.default_rng(0), "piano", 32.0, 120.0, 100.0, h, w, thermal=False)
