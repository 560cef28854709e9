"""docs/claims.md and the committed summaries say what the records say (regenerated in memory, compared)."""

from pathlib import Path

import pytest

from reid.cli import main
from reid.records.claims import FIG3_RECORD, NOT_RUN, SWEEP_BASELINE, attention_comparisons, claims_markdown
from reid.records.provenance import repo_root
from reid.sweep import GRIDS, committed_summary, parse_row

ROOT = repo_root()


def test_claims_page_is_in_step_with_the_records():
    page = (ROOT / "docs" / "claims.md").read_text(encoding="utf-8")
    assert page == claims_markdown(ROOT), "docs/claims.md is out of step with the records: run python -m reid claims"


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "results" / "sweeps").iterdir() if p.is_dir()))
def test_every_committed_summary_is_todays_statistics_of_its_runs(name):
    folder = ROOT / "results" / "sweeps" / name
    baseline = GRIDS.get(name, {}).get("baseline")
    assert (folder / "summary.md").read_text() == committed_summary(folder, baseline), (
        f"results/sweeps/{name}/summary.md is stale: run python -m reid sweep --grid {name} --summary-only")


def test_the_page_and_the_sweeps_take_the_same_baselines():
    for name, baseline in SWEEP_BASELINE.items():
        spec = GRIDS[name]
        assert baseline == spec.get("baseline", parse_row(spec["rows"][0])[0])


def test_the_page_says_what_its_numbers_are():
    page = claims_markdown(ROOT)
    assert "synthetic stand-in" in page and "none is a SYSU-MM01 or RegDB number" in page
    assert "untestable without real data" in page and "generator version" in page
    assert "The paper's own tables disagree" in page and "67.26" in page and "67.74" in page
    claims_table = page.split("\n## ")[0]  # the claims table ends at the first section (other tables follow)
    verdicts = {line.split(" | ")[5] for line in claims_table.splitlines() if line.startswith("| ") and line[2].isdigit()}
    allowed = ("supported (synthetic)", "contradicted (synthetic)", "not resolved", "untestable without real data",
               "open")
    assert verdicts and all(v.startswith(allowed) for v in verdicts), verdicts


def _fig3_root(tmp_path, full_coarse: list[float], seeds=(0, 1, 2)) -> Path:
    """A repository copy whose Fig. 3 record has the given full-model coarse energy shares (chance 30 %)."""
    import json
    import shutil

    shutil.copytree(ROOT / "results" / "paper", tmp_path / "results" / "paper")
    scores = []
    for i, seed in enumerate(seeds):
        scores += [{"model": "baseline", "branch": "single", "seed": seed, "queries": 9, "energy_share": 31.0 + i,
                    "area_fraction": 30.0, "pointing": 0, "pointing_chance": 0, "empty_maps": 0},
                   {"model": "full model", "branch": "coarse", "seed": seed, "queries": 9,
                    "energy_share": full_coarse[i], "area_fraction": 30.0, "pointing": 0, "pointing_chance": 0,
                    "empty_maps": 0}]
    (tmp_path / FIG3_RECORD).write_text(json.dumps({"scores": scores}))
    return tmp_path


def test_fig3_is_read_from_its_record_paired_by_seed_against_the_baseline(tmp_path):
    # baseline excess over chance 1, 2, 3; full model's 5, 7, 6: differences 4, 5, 3, mean 4, sd 1
    found = attention_comparisons(_fig3_root(tmp_path, [35.0, 37.0, 36.0]))
    d = found["vs_baseline"]["coarse"]
    assert d["n"] == 3 and d["mean"] == pytest.approx(4.0) and d["sd"] == pytest.approx(1.0)
    assert d["high"] - d["mean"] == pytest.approx(4.302653 / 3 ** 0.5, rel=1e-5)  # t(0.975, 2) sd / sqrt(n)
    assert d["p_holm"] == pytest.approx(d["p"])  # one branch: a family of one
    assert found["own"][("full model", "coarse")]["excess"] == pytest.approx(6.0)
    # the committed page reads the committed record, or says it has not run
    if (ROOT / FIG3_RECORD).is_file():
        own = attention_comparisons(ROOT)["own"]
        energy, chance = own[("full model", "coarse")]["energy"], own[("full model", "coarse")]["chance"]
        assert f"{energy:.1f} % vs chance {chance:.1f} %" in claims_markdown(ROOT)
    else:
        assert "Fig. 3" in claims_markdown(ROOT) and NOT_RUN in claims_markdown(ROOT)


def test_claims_command_writes_the_page(tmp_path, capsys):
    out = tmp_path / "claims.md"
    assert main(["claims", "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == claims_markdown(ROOT)


def test_summary_only_rewrites_a_summary_from_runs_csv(tmp_path):
    import shutil

    name = next(n for n in ("table4", "table3", "v5_pretrained") if (ROOT / "results" / "sweeps" / n).is_dir())
    committed = ROOT / "results" / "sweeps" / name
    folder = tmp_path / name
    shutil.copytree(committed, folder)
    (folder / "summary.md").write_text("stale\n")
    assert main(["sweep", "--name", name, "--summary-only", "--results-dir", str(tmp_path),
                 *(["--baseline", GRIDS[name]["baseline"]] if GRIDS.get(name, {}).get("baseline") else [])]) == 0
    assert (folder / "summary.md").read_text() == (committed / "summary.md").read_text()
    assert Path(folder / "runs.csv").read_text() == (committed / "runs.csv").read_text()


def test_equal_results_counts_seeds_whose_every_number_agrees():
    """The margin control: Eq. 14 at alpha 0.3 and at alpha 1 gave the same numbers (notebook 07: every hinge
    is open, so the margin does not act); the page says at how many of the seeds both ran."""
    import pandas as pd

    from reid.records.claims import equal_results

    def rows(label, seed, shift=0.0):
        return [{"label": label, "seed": seed, "protocol": p, "rank1": 4.0 + shift, "rank10": 30.0, "rank20": 45.0,
                 "mAP": 7.1, "mINP": 4.0} for p in ("sysu-all", "sysu-indoor")]

    frame = pd.DataFrame(rows("a", 0) + rows("b", 0) + rows("a", 1) + rows("b", 1, 1e-9) + rows("a", 2))
    assert equal_results(frame, "a", "b") == (1, 2)  # seed 1 differs in its last digits; seed 2: one row only
    assert equal_results(frame, "a", "c") == (0, 0)


def test_data_seed_table_pairs_each_draw_and_aliases_table3s_eq14_row(tmp_path):
    import json

    from reid.records.claims import _data_seed_table, data_seed_differences

    maps = {0: {"table3_baseline": [5.0, 6.0], "table3_full": [9.0, 11.0], "table3_ta_crossvit_csa": [6.0, 6.0]},
            1: {"table3_baseline": [4.0, 4.0], "table3_full": [10.0, 8.0], "table4_trihard": [5.0, 7.0]},
            2: {"table3_baseline": [6.0, 5.0], "table3_full": [9.0, 9.0, 1.0]}}  # a third seed the others lack
    for seed, name in {0: "table3", 1: "data_seed1", 2: "data_seed2"}.items():
        folder = tmp_path / "results" / "sweeps" / name
        folder.mkdir(parents=True)
        (folder / "grid.json").write_text(json.dumps({"provenance": {"command": f"sweep {name}"}}))
        lines = ["label,seed,protocol,mAP"] + [f"{label},{s},sysu-all,{v}" for label, values in maps[seed].items()
                                               for s, v in enumerate(values)]
        (folder / "runs.csv").write_text("\n".join(lines) + "\n")
    assert data_seed_differences(tmp_path, "table3_full", "table4_trihard") == {0: {0: 3.0, 1: 5.0},
                                                                                1: {0: 5.0, 1: 1.0}}
    table = "\n".join(_data_seed_table(tmp_path))
    # full - baseline: draw means 4.5, 5.0, 3.5 over seeds 0-1 -> 4.33; Eq. 15 - Eq. 14 on two draws only
    assert "| the full model against the ViT baseline | 3 × 2 (seeds 0, 1) | +4.33 [" in table
    assert "| Eq. 15 against Eq. 14 on the same model | 2 × 2 (seeds 0, 1) | +3.50 [" in table


def _sweep_folder(root: Path, name: str, lines: list[str]) -> None:
    import json

    folder = root / "results" / "sweeps" / name
    folder.mkdir(parents=True)
    (folder / "grid.json").write_text(json.dumps({"provenance": {"command": f"sweep {name}"}}))
    (folder / "runs.csv").write_text("\n".join(["label,dataset,budget,seed,protocol,rank1,mAP", *lines]) + "\n")


def test_recipe_parity_applies_the_full_models_rule_to_the_baseline(tmp_path):
    """The baseline's lr, chosen as the full model's was (highest dev mAP, one seed), against the inherited 1e-3."""
    from reid.records.claims import _recipe_text, recipe_choice

    assert recipe_choice(tmp_path) is None and _recipe_text(None) == "recipe parity: not run"
    _sweep_folder(tmp_path, "recipe_parity", [
        "table3_baseline,sysu,3600,0,sysu-all,4.0,7.0", "table3_baseline,sysu,3600,0,sysu-indoor,9.0,99.0",
        "control_baseline_lr5e4,sysu,3600,0,sysu-all,5.0,6.0", "control_baseline_lr2e3,sysu,3600,0,sysu-all,3.0,8.5"])
    recipe = recipe_choice(tmp_path)
    assert recipe["scores"] == {5e-4: (5.0, 6.0), 1e-3: (4.0, 7.0), 2e-3: (3.0, 8.5)}  # indoor is not the dev metric
    assert (recipe["chosen"], recipe["inherited"], recipe["missing"]) == (2e-3, 1e-3, 1)
    assert "picks 0.002 for the baseline, not the 0.001 it ran at" in _recipe_text(recipe)


def test_budget_curve_pairs_seeds_per_budget_and_settles_on_the_two_largest(tmp_path):
    """Table 3's 3600-step trainings join the budget grid's at the grid's seeds only; 'settled' needs the
    two largest budgets both resolved the same way after Holm."""
    from reid.records.claims import budget_curve, settled

    assert budget_curve(tmp_path) is None and settled(None).startswith("open")
    gains = {540: [0.1, -0.2, 0.3], 1800: [2.0, 2.1, 1.9], 3600: [3.0, 3.1, 2.9]}
    lines = [f"{label},sysu,{budget},{seed},sysu-all,0,{5.0 + (gain if label == 'table3_full' else 0.0)}"
             for budget, row in gains.items() if budget != 3600 for seed, gain in enumerate(row)
             for label in ("table3_baseline", "table3_full")]
    _sweep_folder(tmp_path, "budget", lines)
    table3 = [f"{label},sysu,3600,{seed},sysu-all,0,{5.0 + (gain if label == 'table3_full' else 0.0)}"
              for seed, gain in enumerate([*gains[3600], -9.0]) for label in ("table3_baseline", "table3_full")]
    _sweep_folder(tmp_path, "table3", table3)  # its seed 3 is not a budget-grid seed: left out
    curve = budget_curve(tmp_path)
    assert list(curve["budget"]) == [540, 1800, 3600] and list(curve["n"]) == [3, 3, 3]
    assert curve["mean"].round(6).tolist() == [0.066667, 2.0, 3.0]
    assert settled(curve).startswith("settled: the full model is above the baseline")
    assert settled(curve.iloc[:2]).startswith("not settled")  # 540 steps does not resolve it


def test_attribution_waits_for_its_controls_then_judges_loss_and_modules_apart():
    from reid.records.claims import SUPPORTED, attribution_verdict

    def c(mean, p=0.001, n=5):
        return {"mean": mean, "p_holm": p, "n": n}

    loss, modules = c(4.6), {("table3_ta", "sysu-all"): c(0.1, p=0.9), ("table3_full", "sysu-all"): c(5.0)}
    controls = {"control_trihard_m03": c(-5.0), "control_trihard_soft": c(-5.2)}
    recipe = {"chosen": 1e-3, "inherited": 1e-3, "missing": 0}
    assert attribution_verdict(modules, loss, controls, recipe) == (
        "not resolved: the loss's part supported, the modules' not resolved (synthetic)")  # table3_full is no module
    assert attribution_verdict(modules, loss, {**controls, "control_trihard_soft": c(-5.2, n=3)}, recipe).startswith("open")
    assert attribution_verdict(modules, loss, controls, None).startswith("open")
    assert attribution_verdict(modules, loss, controls, {**recipe, "missing": 1}).startswith("open")
    assert "not its own best" in attribution_verdict(modules, loss, controls, {**recipe, "chosen": 2e-3})
    retuned = {**recipe, "chosen": 5e-4, "retuned": c(4.8)}  # the full model still above the re-tuned baseline
    assert attribution_verdict(modules, loss, controls, retuned).startswith("not resolved: the loss's part supported")
    assert "not its own best" in attribution_verdict(modules, loss, controls, {**retuned, "retuned": c(4.8, n=3)})
    assert attribution_verdict(modules, loss, {**controls, "control_trihard_m03": c(-0.2, p=0.4)}, recipe).startswith(
        "not resolved: the loss's part not resolved")  # a margin that explains the gap takes it from the loss
    assert attribution_verdict({**modules, ("table3_csa", "sysu-all"): c(0.8)}, loss, controls, recipe) == SUPPORTED
    assert attribution_verdict({**modules, ("table3_ta_crossvit_csa", "sysu-all"): c(0.4)}, loss, controls, recipe) == (
        "not resolved: the loss's part supported, the modules' only together, no single module (synthetic)")


def test_findings_name_each_soft_margin_control_that_has_run():
    from reid.records.claims import _findings

    def c(mean, n=5):
        return {"mean": mean, "low": mean - 0.5, "high": mean + 0.5, "n": n, "p_holm": 0.001}

    table3 = {("table3_full", "sysu-all"): c(5.0)}
    assert "soft margin" not in _findings(table3, None, {})
    text = _findings(table3, None, {"control_trihardw_soft": c(-0.3), "control_trihard_soft": c(-4.7)})
    assert "Eq. 15 under a soft margin (AGW's form, no alpha) against Eq. 15 at alpha 1: -0.30 [-0.80, +0.20]" in text
    assert "Eq. 14 under a soft margin, with no hinge to sit open, against Eq. 15 at alpha 1: -4.70" in text
    assert "-0.30 (one seed" not in text and "+0.10 mAP (one seed: no interval)" in _findings(
        table3, None, {"control_trihardw_soft": c(0.1, n=1)})


def test_csa_controls_pair_each_variant_with_the_full_model_alone(tmp_path):
    """The 7x7 row is read from Table 3's sweep against the full model, not against Table 3's baseline, and its
    Holm family is its own two protocols (the other rows of the sweep do not enter it)."""
    from reid.records.claims import _csa_control

    assert _csa_control(tmp_path)[-1].endswith("`table3_full_csa7`): not run yet.")
    gains = [1.0, 2.0, 3.0]
    _sweep_folder(tmp_path, "table3", [
        f"{label},sysu,3600,{seed},{protocol},0,{value}" for seed, gain in enumerate(gains)
        for protocol in ("sysu-all", "sysu-indoor")
        for label, value in (("table3_baseline", 1.0 + seed), ("table3_full", 10.0 + seed),
                             ("table3_full_csa7", 10.0 + seed + gain), ("table3_ta", 5.0 - seed))])
    lines = _csa_control(tmp_path)
    assert lines[0].endswith("(grid `controls_csa`): not run yet.") and lines[1] == ""
    assert "against the full model, SYSU all-search mAP: " in lines[2] and "+2.00 [" in lines[2]
    assert "13.00 vs 11.00" in lines[2] and "n = 3" in lines[2]


def test_the_weighting_alone_pairs_the_two_soft_margin_rows(tmp_path):
    """Eq. 15 against Eq. 14 with no alpha in either: the soft-margin rows against each other, not against
    Eq. 15 at alpha 1."""
    from reid.records.claims import _weighting_text, weighting_alone

    assert weighting_alone(tmp_path) is None and _weighting_text(None)[0].endswith("not run yet.")
    _sweep_folder(tmp_path, "controls_loss", [
        f"{label},sysu,3600,{seed},sysu-all,0,{value}" for seed in range(3)
        for label, value in (("table4_trihardw", 12.0), ("control_trihard_soft", 7.0 + seed),
                             ("control_trihardw_soft", 10.0 + 2 * seed))])
    c = weighting_alone(tmp_path)
    assert (c["n"], c["mean"], c["row"], c["base"]) == (3, 4.0, 12.0, 8.0)
    assert "12.00 vs 8.00 mAP: Δ +4.00 [" in _weighting_text(c)[0]
