"""The notebooks' helpers: the ablation budget and the run folders that cache trained rows."""

from dataclasses import replace
from pathlib import Path

import pytest

from reid.config import config_to_dict, load_config
from reid.errors import UserError
from reid.experiments import Settings, ablation_budget, run_dir


def make_settings(profile: str) -> Settings:
    here = Path(".")
    return Settings(here, here, True, profile, [0], here, here, here)


def test_ablation_budget_shortens_smoke_rows_only(monkeypatch):
    monkeypatch.delenv("REID_ABLATION_BATCHES", raising=False)
    smoke, paper = make_settings("smoke"), make_settings("paper")
    budget = ablation_budget(smoke)
    assert budget == ["data.batches_per_epoch=60"] and ablation_budget(paper) == []
    # The override keeps the profile's epochs and schedule, only the steps per epoch change.
    cfg = load_config("table3_baseline", budget, profile="smoke")
    assert cfg.data.batches_per_epoch == 60 and cfg.train.epochs == load_config("smoke").train.epochs
    monkeypatch.setenv("REID_ABLATION_BATCHES", "0")
    assert ablation_budget(replace(smoke)) == []
    for bad in ("many", "-3"):
        monkeypatch.setenv("REID_ABLATION_BATCHES", bad)
        with pytest.raises(UserError, match="REID_ABLATION_BATCHES"):
            ablation_budget(smoke)


def test_run_folders_differ_by_row_seed_and_resolved_config(tmp_path):
    def folder(config="table3_full", seed=0, overrides=()):
        cfg = config_to_dict(load_config(config, list(overrides), profile="smoke"))
        return run_dir(tmp_path, config, "sysu", seed, cfg, None, "smoke")

    a = folder()
    assert a == folder() and a.name.startswith("table3_full@smoke-sysu-seed0-")
    assert a != folder(seed=1)
    assert a != folder(overrides=["data.batches_per_epoch=60"])
    assert a != folder(config="table3_baseline")
