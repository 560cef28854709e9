"""`python -m reid check-data` on trees written here: the synthetic set passes as synthetic, injected
faults are reported, bad roots are one-line errors (exit 2), the fingerprint is stable."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reid.cli import build_parser, main
from reid.data import check
from reid.data.check import check_data
from reid.data.synthetic import GENERATOR_VERSION, MANIFEST


def copy(synthetic_root: Path, tmp_path: Path, name: str, manifest: bool = True) -> Path:
    """A writable copy of one layout of the (read-only) session set; without its manifest it passes as real."""
    out = shutil.copytree(synthetic_root / name, tmp_path / "copy" / name)
    if not manifest:
        (out / MANIFEST).unlink()
    return out


def first_image(root: Path, pattern: str) -> Path:
    return min(root.glob(pattern))


@pytest.mark.parametrize("dataset, name", [("sysu", "SYSU-MM01"), ("regdb", "RegDB")])
def test_synthetic_small_set_passes_as_synthetic(synthetic_root, dataset, name, capsys):
    report = check_data(synthetic_root / name, dataset)
    assert report.ok and report.manifest["generator_version"] == GENERATOR_VERSION
    assert report.rows and all(row.ok for row in report.rows)
    assert report.real_shape  # the small set is not the real shape: listed, as information only
    assert main(["check-data", "--dataset", dataset, "--data", str(synthetic_root / name)]) == 0
    out = capsys.readouterr().out
    assert f"synthetic {name}-layout" in out and f"generator version {GENERATOR_VERSION}" in out
    assert "information only" in out and "DIFF" not in out and out.strip().endswith("no problem files")


def inject_appledouble(root):
    (first_image(root, "cam1/*/*.jpg").parent / "._x.jpg").write_bytes(b"\x00\x05\x16\x07 resource fork")
    return "AppleDouble", "._x.jpg"


def inject_macos_junk(root):
    (root / "__MACOSX" / "cam1").mkdir(parents=True)
    (root / "__MACOSX" / "cam1" / "._0001.jpg").write_bytes(b"x")
    (root / ".DS_Store").write_bytes(b"y")
    return "__MACOSX", ".DS_Store"


def inject_duplicate(root):
    image = first_image(root, "cam3/*/*.jpg")
    shutil.copy(image, root / "exp" / "copy.jpg")  # outside the camera folders: no count changes
    return "identical files", f"{image.relative_to(root).as_posix()} = exp/copy.jpg"


def inject_16_bit_png(root):
    folder = first_image(root, "cam6/*/*.jpg").parent
    Image.fromarray(np.full((8, 4), 40000, np.uint16)).save(folder / "0099.png")
    return "I;16", "0099.png"


def inject_truncated_jpeg(root):
    image = first_image(root, "cam2/*/*.jpg")
    image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])
    return "truncated", image.name


def inject_palette_image(root):
    folder = first_image(root, "cam4/*/*.jpg").parent
    Image.new("P", (4, 8)).save(folder / "0099.png")
    return "mode P", "0099.png"


@pytest.mark.parametrize("inject", [inject_appledouble, inject_macos_junk, inject_duplicate, inject_16_bit_png,
                                    inject_truncated_jpeg, inject_palette_image])
def test_injected_file_problems_are_reported(synthetic_root, tmp_path, inject, capsys):
    root = copy(synthetic_root, tmp_path, "SYSU-MM01")
    expected = inject(root)
    report = check_data(root, "sysu")
    assert not report.ok
    assert all(any(word in line for line in report.problems) for word in expected), report.problems
    assert main(["check-data", "--dataset", "sysu", "--data", str(root)]) == 1
    out = capsys.readouterr().out
    assert "problems:" in out and out.strip().splitlines()[-1].startswith("differs:")


def test_missing_split_file_is_a_difference_and_a_problem(synthetic_root, tmp_path):
    root = copy(synthetic_root, tmp_path, "RegDB")
    (root / "idx" / "test_thermal_7.txt").unlink()
    report = check_data(root, "regdb")
    assert [(row.name, row.expected, row.found) for row in report.differences] == \
        [("split files (idx/{train,test}_{visible,thermal}_{1..10}.txt)", 40, 39)]
    assert "idx/test_thermal_7.txt: missing split file" in report.problems


def test_missing_id_file_and_extra_image_change_the_counts(synthetic_root, tmp_path):
    root = copy(synthetic_root, tmp_path, "SYSU-MM01")
    folder = first_image(root, "cam1/*/*.jpg").parent
    shutil.copy(folder / "0001.jpg", folder / "0042.jpg")
    (root / "exp" / "test_id.txt").unlink()
    report = check_data(root, "sysu")
    found = {row.name: row.found for row in report.differences}
    assert found == {"test identities (exp/test_id.txt)": None, "images per visible folder (cameras 1, 2, 4, 5)": "2..3"}
    assert any("test_id.txt" in line for line in report.problems)
    assert "expected 4, found none (see problems)" in report.text()


def test_real_data_is_compared_with_the_facts_table(synthetic_root, tmp_path, monkeypatch, capsys):
    """Without the manifest a tree is real: compared with FACTS (here a tiny table, since the real counts
    cannot be had), and the rand_perm_cam.mat note says which galleries results use."""
    root = copy(synthetic_root, tmp_path, "SYSU-MM01", manifest=False)
    found = {row.name: row.found for row in check_data(synthetic_root / "SYSU-MM01", "sysu").real_shape}
    tiny = {name: found[name] for name in list(check.SYSU_FACTS)[:3]}
    monkeypatch.setitem(check.FACTS, "sysu", tiny)
    report = check_data(root, "sysu")
    assert report.manifest is None and report.ok and not report.real_shape
    assert any("rand_perm_cam.mat: absent" in note and "seeded" in note for note in report.notes)
    monkeypatch.setitem(check.FACTS, "sysu", {**tiny, "test identities (exp/test_id.txt)": 96})
    assert main(["check-data", "--dataset", "sysu", "--data", str(root)]) == 1
    out = capsys.readouterr().out
    assert "published facts" in out and "DIFF  test identities (exp/test_id.txt)" in out
    assert "expected 96, found 4" in out and "differs: 1 difference(s)" in out


def test_unreadable_rand_perm_cam_is_a_problem(synthetic_root, tmp_path):
    root = copy(synthetic_root, tmp_path, "SYSU-MM01")
    (root / "exp" / "rand_perm_cam.mat").write_bytes(b"not a mat file")
    assert any("rand_perm_cam.mat" in line for line in check_data(root, "sysu").problems)


@pytest.mark.parametrize("make, words", [
    (lambda tmp: tmp / "missing", ["missing", "no such folder"]),
    (lambda tmp: (tmp / "empty").mkdir() or tmp / "empty", ["not a SYSU-MM01 layout", "cam1..cam6"]),
])
def test_bad_root_is_one_line_and_exit_2(tmp_path, capsys, make, words):
    root = make(tmp_path)
    assert main(["check-data", "--dataset", "sysu", "--data", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: ") and str(root) in err
    assert all(word in err for word in words)


def test_wrong_folder_gets_a_hint(synthetic_root, capsys):
    assert main(["check-data", "--dataset", "sysu", "--data", str(synthetic_root)]) == 2
    assert f"did you mean {synthetic_root / 'SYSU-MM01'}" in capsys.readouterr().err
    assert main(["check-data", "--dataset", "sysu", "--data", str(synthetic_root / "RegDB")]) == 2
    assert "--dataset regdb" in capsys.readouterr().err


def test_fingerprint_is_stable_and_changes_with_a_file(synthetic_root, tmp_path):
    original = check_data(synthetic_root / "RegDB", "regdb").fingerprint
    root = copy(synthetic_root, tmp_path, "RegDB")
    assert check_data(root, "regdb").fingerprint == original  # another folder, the same copy
    image = first_image(root, "Visible/*/*.bmp")
    image.write_bytes(image.read_bytes() + b"\x00")
    assert check_data(root, "regdb").fingerprint != original
    from reid.data.identity import dataset_fingerprint

    assert check_data(root, "regdb").fingerprint == dataset_fingerprint(root, refresh=True)  # = the card's


def test_help_shows_an_example(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["check-data", "--help"])
    assert "example: python -m reid check-data --dataset sysu --data" in capsys.readouterr().out
