"""`reid.data.train_data.data_roots`: the one meaning of DATA (issue 33, item 5): the folder that holds the
datasets, for `make ablation` / `sweep` and `make reproduce` / `reproduce` alike; a dataset's own folder is
accepted for that dataset, in one line."""

import pytest

from reid.cli import main
from reid.data.train_data import data_roots, layout_of
from reid.utils.errors import UserError


def test_data_is_the_folder_that_holds_the_datasets(synthetic_root, capsys):
    assert data_roots(synthetic_root) == {"sysu": synthetic_root / "SYSU-MM01", "regdb": synthetic_root / "RegDB"}
    assert data_roots(synthetic_root, ("regdb",)) == {"regdb": synthetic_root / "RegDB"}
    assert capsys.readouterr().out == ""


def test_a_datasets_own_folder_is_taken_for_it_in_one_line(synthetic_root, capsys):
    sysu = synthetic_root / "SYSU-MM01"
    assert layout_of(sysu) == "sysu" and layout_of(synthetic_root / "RegDB") == "regdb"
    assert layout_of(synthetic_root) is None
    assert data_roots(sysu, ("sysu",)) == {"sysu": sysu}
    out = capsys.readouterr().out.strip()
    assert out == f"--data {sysu}: the SYSU-MM01 folder itself, taken as SYSU-MM01/ (DATA is the folder that holds " \
                  f"the datasets: {synthetic_root})"
    assert data_roots(sysu) == {"sysu": sysu}  # reproduce without --dataset: the one it is
    with pytest.raises(UserError, match=r"the SYSU-MM01 folder itself, and regdb needs RegDB/; give the folder "
                                        r"that holds SYSU-MM01/ and RegDB/"):
        data_roots(sysu, ("sysu", "regdb"))  # Table 4 runs both


def test_a_folder_without_datasets_is_one_line_naming_it(tmp_path, capsys):
    with pytest.raises(UserError, match="holds neither SYSU-MM01/ nor RegDB/"):
        data_roots(tmp_path)
    with pytest.raises(UserError, match="no such directory"):
        data_roots(tmp_path / "missing", ("sysu",))
    assert main(["reproduce", "--data", str(tmp_path), "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: --data {tmp_path}: holds neither") and len(err.splitlines()) == 1
    assert not (tmp_path / "runs").exists()
