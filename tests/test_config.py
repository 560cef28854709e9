
import pytest

from reid.config import (
    ExperimentConfig,
    available_configs,
    config_from_dict,
    config_to_dict,
    load_config,
    save_config,
)
from reid.models import ModelConfig
from reid.utils.errors import UserError


def test_every_shipped_config_loads():
    names = available_configs()
    for required in ["paper_sysu", "paper_regdb", "paper_literal_sysu", "paper_literal_regdb", "smoke",
                     "table3_baseline", "table3_full", "table4_center", "table4_trihard", "table4_trihardw"]:
        assert required in names
    for name in names:
        cfg = load_config(name)
        assert cfg.name == name


def test_paper_settings():
    cfg = load_config("paper_sysu")
    assert (cfg.data.height, cfg.data.width) == (288, 144)
    # "Batch 16" read as the lineage's --batch-size (identities): P8K4 per modality; P4K4 is paper_literal_*
    assert (cfg.data.num_ids, cfg.data.num_instances) == (8, 4)
    assert cfg.data.random_erasing == 0.5 and cfg.train.epochs == 100
    assert cfg.optim.lr == 0.1 and cfg.optim.milestones == [20, 50] and cfg.optim.gamma == 0.1
    assert cfg.optim.weight_decay == 5e-4 and cfg.loss.margin == 1.0 and cfg.loss.epsilon == 0.1
    literal = load_config("paper_literal_regdb")
    assert literal.optim.name == "adam" and literal.optim.lr == 0.1 and literal.optim.backbone_lr_scale == 1
    assert literal.data.dataset == "regdb" and literal.optim.milestones == [20, 50]


def test_table_rows_differ_only_in_their_switches():
    base = config_to_dict(load_config("paper_sysu"))
    rows = {
        "table3_baseline": {"model.backbone": "vit", "model.csa": False, "data.trivial_augment": False,
                            "loss.metric": "hard_triplet"},
        "table3_full": {},
        "table4_center": {"loss.metric": "center", "loss.metric_weight": 0.0005},
    }
    for name, expected in rows.items():
        row = config_to_dict(load_config(name))
        for key, value in expected.items():
            section, sub = key.split(".")
            assert row[section][sub] == value, (name, key)
        for section in ["data", "optim", "train"]:
            changed = {k for k in base[section] if row[section][k] != base[section][k]}
            assert changed <= {k.split(".")[1] for k in expected if k.startswith(section)}, (name, changed)


def test_profile_replaces_the_base_but_keeps_the_row_switches():
    cfg = load_config("table3_baseline", base="smoke")
    smoke = load_config("smoke")
    assert cfg.model.backbone == "vit" and cfg.model.csa is False
    assert cfg.model.preset == smoke.model.preset and cfg.data.height == smoke.data.height
    assert cfg.data.trivial_augment is False and cfg.optim == smoke.optim


def test_overrides_are_typed_like_the_values_they_replace():
    cfg = load_config("smoke", overrides=["optim.lr=5e-1", "train.epochs=3", "data.with_gray=false",
                                           "optim.milestones=[1, 2]", "model.preset=9", "data.root=/x"])
    assert cfg.optim.lr == 0.5 and isinstance(cfg.optim.lr, float)
    assert cfg.train.epochs == 3 and isinstance(cfg.train.epochs, int)
    assert cfg.data.with_gray is False and cfg.optim.milestones == [1, 2]
    assert cfg.model.preset == "9" and cfg.data.root == "/x"
    with pytest.raises(UserError, match="train.epochs"):
        load_config("smoke", overrides=["train.epochs=1.5"])
    with pytest.raises(UserError, match="true or false"):
        load_config("smoke", overrides=["data.with_gray=maybe"])
    with pytest.raises(UserError, match="optim.lrr"):
        load_config("smoke", overrides=["optim.lrr=1"])
    with pytest.raises(UserError, match="key=value"):
        load_config("smoke", overrides=["optim.lr"])
    with pytest.raises(UserError, match="loss.metric"):
        load_config("smoke", overrides=["loss.metric=triplett"])
    with pytest.raises(UserError, match="data.pad"):
        load_config("smoke", overrides=["data.pad=-1"])
    with pytest.raises(UserError, match="batches_per_epoch"):
        load_config("smoke", overrides=["data.batches_per_epoch=-5"])


def test_unknown_keys_name_the_key_and_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("base: smoke\noptim: {learning_rate: 0.1}\n")
    with pytest.raises(UserError, match=r"optim\.learning_rate.*bad\.yaml"):
        load_config(bad)
    bad.write_text("trainer: {epochs: 1}\n")
    with pytest.raises(UserError, match=r"'trainer'.*bad\.yaml"):
        load_config(bad)
    with pytest.raises(UserError, match="config not found: 'nope'"):
        load_config("nope")
    bad.write_text("optim: [1, 2\n")
    with pytest.raises(UserError, match="cannot parse config .*bad.yaml"):
        load_config(bad)


def test_base_is_resolved_next_to_the_file_and_only_one_level(tmp_path):
    (tmp_path / "parent.yaml").write_text("train: {epochs: 7}\n")
    (tmp_path / "child.yaml").write_text("base: parent.yaml\noptim: {lr: 0.2}\n")
    cfg = load_config(tmp_path / "child.yaml")
    assert cfg.train.epochs == 7 and cfg.optim.lr == 0.2
    (tmp_path / "parent.yaml").write_text("base: smoke\n")
    with pytest.raises(UserError, match="one level"):
        load_config(tmp_path / "child.yaml")


def test_round_trip_through_yaml_and_dict(tmp_path):
    cfg = load_config("table4_center", overrides=["train.seed=3"])
    path = save_config(cfg, tmp_path / "config.yaml")
    assert load_config(path) == cfg
    assert config_from_dict(config_to_dict(cfg)) == cfg
    assert config_to_dict(ExperimentConfig()) == config_to_dict(config_from_dict({}))
    assert config_from_dict({}).model == ModelConfig()  # the model section is typed like the others


def test_control_rows_change_only_the_loss_or_the_lr():
    """Issue 32's controls (not run yet): on the smoke profile each differs from its Table row in one place."""
    from reid.experiments import profile_config

    smoke = profile_config("smoke", "sysu")
    trihard = config_to_dict(load_config("table4_trihard", base=smoke))
    baseline = config_to_dict(load_config("table3_baseline", base=smoke))
    full = config_to_dict(load_config("table3_full", base=smoke))
    expected = {
        "control_trihard_m01": (trihard, {("loss", "margin"): 0.1}),
        "control_trihard_m03": (trihard, {("loss", "margin"): 0.3}),
        "control_trihard_m05": (trihard, {("loss", "margin"): 0.5}),
        "control_trihardw_soft": (trihard, {("loss", "metric"): "adaptive_triplet", ("loss", "soft_margin"): True}),
        "control_trihard_soft": (trihard, {("loss", "soft_margin"): True}),
        "control_full_csa_r4": (full, {("model", "csa_reduction"): 4}),
        "control_baseline_lr5e4": (baseline, {("optim", "lr"): 5e-4}),
        "control_baseline_lr2e3": (baseline, {("optim", "lr"): 2e-3}),
        "control_baseline_lr4e3": (baseline, {("optim", "lr"): 4e-3}),
    }
    for name, (reference, changes) in expected.items():
        row = config_to_dict(load_config(name, base=smoke))
        differ = {(section, key) for section in ("model", "data", "loss", "optim", "train")
                  for key in row[section] if row[section][key] != reference[section][key]}
        assert differ == set(changes), (name, differ)
        assert all(row[section][key] == value for (section, key), value in changes.items())


def test_workers_have_one_upper_bound_everywhere(monkeypatch):
    """Issue 34, case 1: `--set data.workers=100000` forked until the OOM killer; REID_WORKERS was 0..64."""
    from reid.config import MAX_WORKERS
    from reid.experiments import settings

    assert load_config("smoke", overrides=[f"data.workers={MAX_WORKERS}"]).data.workers == MAX_WORKERS
    assert load_config("smoke", overrides=["data.workers=auto"]).data.workers == "auto"
    for bad in (MAX_WORKERS + 1, 100000, -1):
        with pytest.raises(UserError, match=f"data.workers={bad}.*0..{MAX_WORKERS}"):
            load_config("smoke", overrides=[f"data.workers={bad}"])
    with pytest.raises(UserError, match=f"REID_WORKERS={MAX_WORKERS + 1}: expected an integer from 0 to {MAX_WORKERS}"):
        settings({"REID_WORKERS": str(MAX_WORKERS + 1)})


def test_a_metric_loss_needs_two_identities_a_batch():
    """Issue 34, case 16: `data.num_ids=1` made the triplet loss 0 for the whole run."""
    with pytest.raises(UserError, match="data.num_ids=1 .*P >= 2"):
        load_config("smoke", overrides=["data.num_ids=1"])
    with pytest.raises(UserError, match="data.num_ids=1"):
        load_config("table4_center", overrides=["data.num_ids=1"])
    assert load_config("smoke", overrides=["data.num_ids=1", "loss.metric_weight=0"]).data.num_ids == 1
    assert load_config("smoke", overrides=["data.num_ids=2"]).data.num_ids == 2


def test_a_profile_swapped_in_for_a_rows_base_may_have_its_own_base():
    """Issue 33, item 5: Table 4's rows on RegDB with the paper profile failed ("paper_regdb has its own
    'base:'"): a profile in place of a row's base loads as it does on its own (paper_regdb is paper_sysu on
    RegDB); a file's own chain of bases stays one level."""
    cfg = load_config("table4_trihard", base="paper_regdb")
    paper = load_config("paper_regdb")
    assert cfg.data.dataset == "regdb" and cfg.loss.metric == "hard_triplet"
    assert (cfg.train.epochs, cfg.model.preset, cfg.optim.lr) == (paper.train.epochs, paper.model.preset, paper.optim.lr)


def test_a_files_profiles_section_applies_on_its_base_only_and_names_a_known_config(tmp_path):
    row = tmp_path / "row.yaml"
    row.write_text("base: paper_sysu\nmodel: {backbone: vit, csa: false}\n"
                   "profiles:\n  smoke: {optim: {lr: 0.5}}\n  paper_sysu: {optim: {lr: 0.25}}\n")
    assert load_config(row).optim.lr == 0.25  # its own base
    assert load_config(row, base="smoke").optim.lr == 0.5  # the profile swapped in
    assert load_config(row, ["optim.lr=0.125"], base="smoke").optim.lr == 0.125  # --set still wins
    row.write_text("base: paper_sysu\nprofiles:\n  smok: {optim: {lr: 0.5}}\n")
    with pytest.raises(UserError, match="'profiles: smok' in .*row.yaml: no config named 'smok'"):
        load_config(row)
    row.write_text("base: paper_sysu\nprofiles: [smoke]\n")
    with pytest.raises(UserError, match="must map base config names"):
        load_config(row)
