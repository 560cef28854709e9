"""`docs/claims.md`: which of the paper's claims hold here, one row per claim, written from the records.

    python -m reid claims            # rewrite docs/claims.md from results/ and results/paper/
    claims_markdown()                # the same page as a string (tests/test_claims.py compares the two)

Every number of ours is read from committed records: `results/reproduce_smoke_*.json` (`make reproduce`),
`results/sweeps/<grid>/runs.csv` (the sweeps' tabulated records, with `grid.json`'s command) and, for Fig. 3,
notebook 08's committed output (no record in `results/` holds it). The paper's numbers come from
`results/paper/` (`paper_rows`). The statistics are `reid.records.stats`'s, computed on the same frames as
each sweep's `summary.md` (same baseline, same Holm family), so the page and the summaries agree.

A verdict is one of: *supported* or *contradicted* (Holm-adjusted p < 0.05, in the paper's direction or
against it), *not resolved* (with whether the paper's margin was even detectable at 80 % power here), or
*untestable without real data* (the paper's absolute numbers: ours are on a synthetic stand-in).
"""

from __future__ import annotations

import json
from pathlib import Path

from reid.records.stats import SETTING_OF, p_text, paired_frame

# Each sweep's baseline, as reid.sweep.GRIDS names it (tests/test_claims.py checks that they agree).
SWEEP_BASELINE = {"table3": "table3_baseline", "table4": "table4_trihardw"}
# Our config rows under the paper's row names (Table 3's labels are a reading of Sec. 2.3.1: results/paper/).
TABLE3_ROWS = {"table3_ta": "+TA", "table3_crossvit": "+CrossViT", "table3_csa": "+CSA",
               "table3_ta_crossvit": "+TA +CrossViT", "table3_ta_crossvit_csa": "+TA +CrossViT +CSA",
               "table3_full": "+TA +CrossViT +CSA +L_trihardw"}
TABLE4_ROWS = {"table4_trihard": "L_trihard", "table4_center": "L_center"}
PROTOCOLS = {"sysu-all": ("1", "sysu_all"), "sysu-indoor": ("1", "sysu_indoor"),
             "regdb-v2t": ("2", "regdb_v2t"), "regdb-t2v": ("2", "regdb_t2v")}
# The synthetic generator behind a SYSU-layout fingerprint, for records written before the `data` block named
# its generator (`describe_data`): the default sets of versions 4 and 5 (results/README.md). RegDB's bitmaps
# keep their sizes across versions, so its fingerprint (0278718a96a8782d) cannot say which; such a record
# without a `generator` entry is printed as "version not recorded".
GENERATOR_OF_FINGERPRINT = {"be782a5a8f4fe23c": 4, "33a2d139497ea4a9": 5}
NOT_RUN = "open (not yet run on the current stand-in)"
SUPPORTED, CONTRADICTED = "supported (synthetic)", "contradicted (synthetic)"
UNTESTABLE = "untestable without real data"


def _root(root) -> Path:
    from reid.records.provenance import repo_root

    return Path(root) if root is not None else repo_root()


def _sweep(root: Path, name: str):
    """The sweep's runs.csv and its command, or (None, the command that would run it) while it has not run."""
    import pandas as pd

    folder = root / "results" / "sweeps" / name
    if not (folder / "runs.csv").is_file():
        return None, f"python -m reid sweep --grid {name}"
    command = json.loads((folder / "grid.json").read_text())["provenance"]["command"]
    return pd.read_csv(folder / "runs.csv"), command


def _pair(pairs, label: str, protocol: str, sign: int = 1) -> dict | None:
    if pairs is None or pairs.empty:  # empty: no row shares a seed with the baseline
        return None
    hit = pairs[(pairs["label"] == label) & (pairs["protocol"] == protocol)]
    return _comparison(hit.iloc[0], sign) if len(hit) else None


def _reproduce(root: Path, protocol: str) -> tuple[dict, dict]:
    name = PROTOCOLS[protocol][1]
    trained, untrained = (json.loads((root / "results" / f"reproduce_smoke_{name}_{kind}.json").read_text())
                          for kind in ("trained", "untrained"))
    return trained, untrained


def _paper(table: str):
    from reid.records.tables import paper_rows

    return paper_rows(table)


def _value(paper, method: str, setting: str, metric: str) -> float:
    hit = paper[(paper["method"] == method) & (paper["setting"] == setting) & (paper["metric"] == metric)]
    return float(hit["value"].iloc[0]) if len(hit) else float("nan")


def _comparison(d, sign: int = 1) -> dict:
    """A paired_frame row as the page shows it, turned round when `sign` is -1 (Table 4's rows are measured
    as row - L_trihardw; the paper's claim is L_trihardw - row)."""
    low, high = sorted((sign * d["low"], sign * d["high"]))
    return {"mean": sign * d["mean"], "low": low, "high": high, "n": int(d["n"]), "p_holm": d["p_holm"],
            "mde": d["mde"], "row": d["row_mean"] if sign > 0 else d["base_mean"],
            "base": d["base_mean"] if sign > 0 else d["row_mean"]}


def comparison_verdict(paper_delta: float, ours: dict) -> str:
    """The paper claims a difference of `paper_delta`; ours is resolved or not by its Holm-adjusted p."""
    if ours["n"] < 2:
        return "not resolved (one seed)"
    if ours["p_holm"] < 0.05:
        return SUPPORTED if (ours["mean"] > 0) == (paper_delta > 0) else CONTRADICTED
    if abs(paper_delta) < ours["mde"]:
        return "not resolved; the paper's margin is below what this n detects"
    return "not resolved"


def _ours_text(c: dict, metric: str) -> str:
    if c["n"] < 2:
        return f"{c['row']:.2f} vs {c['base']:.2f} {metric}: Δ {c['mean']:+.2f}, n = {c['n']} (no interval from one seed)"
    return (f"{c['row']:.2f} vs {c['base']:.2f} {metric}: Δ {c['mean']:+.2f} [{c['low']:+.2f}, {c['high']:+.2f}], "
            f"n = {c['n']}; detectable at 80 % power: {c['mde']:.2f}")


def _ours_holm_text(c: dict, metric: str = "mAP") -> str:
    """_ours_text and, where there are two seeds or more, the Holm-adjusted p."""
    return _ours_text(c, metric) + (f", Holm p {p_text(c['p_holm'])}" if c["n"] >= 2 else "")


def _head_to_head(frame, base: str, label: str) -> dict | None:
    """`label` against `base` alone (SYSU all-search mAP): the Holm family is this pair's two protocols, not the
    rest of its sweep."""
    return None if frame is None else _pair(paired_frame(frame[frame["label"].isin([base, label])], base, "mAP"),
                                            label, "sysu-all")


def _code(command: str) -> str:
    return f"`{command}`"


# ------------------------------------------------------------------------------------------ claim rows

def headline_rows(root: Path) -> list[dict]:
    """Tables 1-2, the paper's own method: absolute numbers on the real datasets."""
    rows = []
    for protocol, (table, _) in PROTOCOLS.items():
        paper, setting = _paper(f"table{table}"), SETTING_OF[protocol]
        dataset = "SYSU-MM01" if table == "1" else "RegDB"
        if not (root / "results" / f"reproduce_smoke_{PROTOCOLS[protocol][1]}_trained.json").is_file():
            rows.append({"claim": f"Table {table}: the method reaches these numbers on {dataset} {setting} "
                                  "(Rank-1 / mAP)",
                         "paper": f"{_value(paper, 'Ours (paper)', setting, 'rank1'):.2f} / "
                                  f"{_value(paper, 'Ours (paper)', setting, 'mAP'):.2f}",
                         "ours": "not measured on the current stand-in yet", "p": "", "verdict": UNTESTABLE,
                         "command": _code("make reproduce")})
            continue
        trained, untrained = _reproduce(root, protocol)
        rows.append({
            "claim": f"Table {table}: the method reaches these numbers on {dataset} {setting} (Rank-1 / mAP)",
            "paper": f"{_value(paper, 'Ours (paper)', setting, 'rank1'):.2f} / "
                     f"{_value(paper, 'Ours (paper)', setting, 'mAP'):.2f}",
            "ours": f"{trained['rank1']:.2f} / {trained['mAP']:.2f} on the {trained['data']['label']} set "
                    f"(untrained: {untrained['rank1']:.2f} / {untrained['mAP']:.2f}), n = 1 "
                    f"(seed {trained['protocol'].get('seed')})",
            "p": "", "verdict": UNTESTABLE, "command": _code(trained["provenance"]["command"])})
    return rows


def sota_rows(root: Path) -> list[dict]:
    """Tables 1-2: the method above every compared method, per dataset (both settings, Rank-1 and mAP)."""
    rows = []
    for table, dataset in (("1", "SYSU-MM01"), ("2", "RegDB")):
        paper = _paper(f"table{table}")
        margins = []
        for (setting, metric), part in paper[paper["metric"].isin(["rank1", "mAP"])].groupby(
                ["setting", "metric"], sort=False):
            others = part[part["method"] != "Ours (paper)"]
            best = others.loc[others["value"].idxmax()]
            ours = float(part[part["method"] == "Ours (paper)"]["value"].iloc[0])
            margins.append(f"{setting} {metric} {ours - best['value']:+.2f} over {best['method']}")
        rows.append({"claim": f"Table {table}: state of the art on {dataset} (above the {paper['method'].nunique() - 1} "
                              "methods compared)",
                     "paper": "; ".join(margins), "ours": "no real data: not measured", "p": "",
                     "verdict": UNTESTABLE, "command": ""})
    return rows


def gain_rows(root: Path, table: str) -> tuple[list[dict], dict]:
    """Table 3: each row above the baseline, per SYSU setting; Table 4: L_trihardw (Eq. 15) above L_trihard
    (Eq. 14) and above L_center, per setting. mAP; a row per claim and setting, and our comparisons by
    (label, protocol). The sweep measures row - its baseline, so Table 4's differences are turned round."""
    frame, command = _sweep(root, table)
    pairs = None if frame is None else paired_frame(frame, SWEEP_BASELINE[table], "mAP")
    paper = _paper(table)
    names, protocols = ((TABLE3_ROWS, ("sysu-all", "sysu-indoor")) if table == "table3" else (TABLE4_ROWS, PROTOCOLS))
    rows, found = [], {}
    for label, method in names.items():
        better, other, sign = (method, "baseline", 1) if table == "table3" else ("L_trihardw", method, -1)
        for protocol in protocols:
            setting = SETTING_OF[protocol]
            high, low = _value(paper, better, setting, "mAP"), _value(paper, other, setting, "mAP")
            c = _pair(pairs, label, protocol, sign)
            dataset = "SYSU-MM01" if protocol.startswith("sysu") else "RegDB"
            row = {"claim": f"Table {table[-1]}: {better} above {other}, {dataset} {setting} mAP",
                   "paper": f"{high:.2f} vs {low:.2f}: Δ {high - low:+.2f} (one run)", "command": _code(command)}
            if c is None:
                rows.append({**row, "ours": "not measured on the current stand-in yet", "p": "", "verdict": NOT_RUN})
                continue
            found[(label, protocol)] = c
            rows.append({**row, "ours": _ours_text(c, "mAP"), "p": p_text(c["p_holm"]),
                         "verdict": comparison_verdict(high - low, c)})
    return rows, found


FIG3_RECORD = Path("results") / "fig3_attention_smoke.json"


def attention_comparisons(root: Path) -> dict | None:
    """Fig. 3 from notebook 08's record (`reid.tools.gradcam.attention_record`): per branch of the full
    model, its energy share on the visible person above chance (the person's share of the tokens) minus the
    baseline's, paired by seed, Holm over the branches; and each model's own excess over chance. None while
    the record does not exist."""
    import pandas as pd

    from reid.records.stats import holm, mean_sd, paired_difference

    path = root / FIG3_RECORD
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    frame = pd.DataFrame(record["scores"])
    frame["excess"] = frame["energy_share"] - frame["area_fraction"]
    base = frame[frame["model"] == "baseline"].set_index("seed")["excess"]
    out = {"record": record, "own": {}, "vs_baseline": {}}
    for (model, branch), part in frame.groupby(["model", "branch"], sort=False):
        mean, sd = mean_sd(part["excess"])
        out["own"][(model, branch)] = {"energy": part["energy_share"].mean(), "chance": part["area_fraction"].mean(),
                                       "excess": mean, "sd": sd, "n": len(part)}
        if model == "full model":
            part = part.set_index("seed")
            shared = sorted(set(part.index) & set(base.index))
            out["vs_baseline"][branch] = paired_difference(part.loc[shared, "excess"], base.loc[shared])
    adjusted = holm([d["p"] for d in out["vs_baseline"].values()])
    for d, p_holm in zip(out["vs_baseline"].values(), adjusted):
        d["p_holm"] = p_holm
    return out


def figure_rows(root: Path, table3: dict) -> list[dict]:
    """Fig. 3 (attention on the person) and Fig. 4 (better top-10 retrieval than the baseline)."""
    found = attention_comparisons(root)
    command = "make notebooks (notebook 08: REID_SEEDS=0,1,2 measures three seeds; results/fig3_attention_smoke.json)"
    if found is None:
        ours, verdict, p = "not measured on the current stand-in yet", NOT_RUN, ""
    else:
        own = "; ".join(f"{m} {b}: {c['energy']:.1f} % vs chance {c['chance']:.1f} % ({c['excess']:+.1f} ± "
                        f"{c['sd']:.1f}, n = {c['n']})" for (m, b), c in found["own"].items())
        versus = found["vs_baseline"]
        ours = (f"Grad-CAM energy share on the visible person, mean over seeds: {own}. Full model's excess over "
                "chance minus the baseline's, paired by seed: " + "; ".join(
                    f"{b} {d['mean']:+.1f} [{d['low']:+.1f}, {d['high']:+.1f}]" for b, d in versus.items()))
        p = ", ".join(f"{b} {p_text(d['p_holm'])}" for b, d in versus.items())
        n = min(d["n"] for d in versus.values())
        if n < 2:
            verdict = "not resolved (one seed)"
        elif all(d["p_holm"] < 0.05 and d["mean"] > 0 for d in versus.values()):
            verdict = SUPPORTED
        elif any(d["p_holm"] < 0.05 and d["mean"] < 0 for d in versus.values()):
            verdict = CONTRADICTED
        else:
            verdict = "not resolved"
    rows = [{"claim": "Fig. 3: the full model attends to head, shoulders and legs, the background is suppressed "
                      "(more of its attention on the person than the baseline's)",
             "paper": "qualitative (attention maps)", "ours": ours, "p": p, "verdict": verdict,
             "command": _code(command)}]
    frame, command = _sweep(root, "table3")
    c = _pair(None if frame is None else paired_frame(frame, SWEEP_BASELINE["table3"], "rank1"), "table3_full",
              "sysu-all")
    row = {"claim": "Fig. 4: the full model's top-10 retrieval is better than the baseline's",
           "paper": "qualitative (ranked lists)", "command": _code(command)}
    if c is None:
        rows.append({**row, "ours": "not measured on the current stand-in yet", "p": "", "verdict": NOT_RUN})
    else:
        rows.append({**row, "ours": _ours_text(c, "Rank-1") + " (SYSU all-search; notebook 09 shows 4 queries)",
                     "p": p_text(c["p_holm"]), "verdict": comparison_verdict(1.0, c)})
    return rows


CONTROL_ROWS = {"table4_trihard": "Eq. 14, alpha 1", "control_trihard_m05": "Eq. 14, alpha 0.5",
                "control_trihard_m03": "Eq. 14, alpha 0.3", "control_trihard_m01": "Eq. 14, alpha 0.1",
                "control_trihardw_soft": "Eq. 15, soft margin", "control_trihard_soft": "Eq. 14, soft margin"}


# The margin controls: Eq. 14 at another alpha, against Eq. 14 at alpha 1 on equal seeds.
MARGIN_CONTROLS = ("control_trihard_m05", "control_trihard_m03", "control_trihard_m01")
METRIC_COLUMNS = ("rank1", "rank10", "rank20", "mAP", "mINP")


def equal_results(frame, row: str, other: str) -> tuple[int, int]:
    """(seeds at which `row` and `other` gave equal numbers, every metric of every protocol; seeds both ran).
    Two trainings that differ in one setting and agree to the last digit took the same steps: the setting
    did not act (e.g. a margin while every hinge is open, notebook 07)."""
    cols = ["seed", "protocol", *METRIC_COLUMNS]
    a = frame[frame["label"] == row][cols].set_index(["seed", "protocol"]).sort_index()
    b = frame[frame["label"] == other][cols].set_index(["seed", "protocol"]).sort_index()
    shared = sorted(set(a.index.get_level_values(0)) & set(b.index.get_level_values(0)))
    equal = sum(a.loc[seed].equals(b.loc[seed]) for seed in shared)
    return equal, len(shared)


def control_comparisons(root: Path) -> dict:
    """The loss controls (sweep `controls_loss`, SYSU all-search mAP), each against Eq. 15 at alpha 1
    (`table4_trihardw`): {label: comparison}; empty while the sweep has not run. A margin control also
    carries `equal_to_alpha1`: (seeds with results equal to Eq. 14 at alpha 1, seeds both ran)."""
    frame, _ = _sweep(root, "controls_loss")
    if frame is None:
        return {}
    pairs = paired_frame(frame, "table4_trihardw", "mAP")
    out = {label: c for label in CONTROL_ROWS if (c := _pair(pairs, label, "sysu-all")) is not None}
    for label in MARGIN_CONTROLS:
        if label in out:
            out[label]["equal_to_alpha1"] = equal_results(frame, label, "table4_trihard")
    return out


def weighting_alone(root: Path) -> dict | None:
    """Eq. 15 against Eq. 14 with neither margin: both under a soft margin (sweep `controls_loss`, SYSU
    all-search mAP, Holm over the pair's two protocols), so the two differ in the weighting only."""
    return _head_to_head(_sweep(root, "controls_loss")[0], "control_trihard_soft", "control_trihardw_soft")


def _equal_text(c: dict) -> str:
    """What a margin control's equality with Eq. 14 at alpha 1 says, or nothing."""
    equal, shared = c.get("equal_to_alpha1", (0, 0))
    if not shared:
        return ""
    if equal == shared:
        seeds = "the one seed" if shared == 1 else f"all {shared} seeds"
        return (f"its results equal Eq. 14 at alpha 1 at {seeds} both ran (every metric of both "
                "protocols): the margin did not change the training, since every hinge is open (notebook 07)")
    return f"its results equal Eq. 14 at alpha 1 at {equal} of the {shared} seeds both ran"


def _delta_text(c: dict) -> str:
    """A control's difference as a sentence's clause: interval, n and Holm p, or that one seed gives none."""
    if c["n"] < 2:
        return f"{c['mean']:+.2f} mAP (one seed: no interval)"
    return f"{c['mean']:+.2f} [{c['low']:+.2f}, {c['high']:+.2f}] mAP (n = {c['n']}, Holm p {p_text(c['p_holm'])})"


def loss_switch(table4: dict, controls: dict) -> dict | None:
    """Eq. 14 -> Eq. 15 on the same +TA +CrossViT +CSA model (SYSU all-search mAP, Eq. 15 minus Eq. 14):
    Table 4's comparison, or the loss controls' (the same trainings) while Table 4 has not run."""
    if ("table4_trihard", "sysu-all") in table4:
        return table4[("table4_trihard", "sysu-all")]
    if "table4_trihard" in controls:
        c = controls["table4_trihard"]
        return {**c, "mean": -c["mean"], "low": -c["high"], "high": -c["low"], "row": c["base"], "base": c["row"]}
    return None


# The controls the attribution waits for (each at this many seeds) before it gives a verdict.
ATTRIBUTION_CONTROLS, ATTRIBUTION_SEEDS = ("control_trihard_m03", "control_trihard_soft"), 5
SINGLE_MODULE_ROWS = ("table3_ta", "table3_crossvit", "table3_csa")


def attribution_verdict(table3: dict, loss: dict | None, controls: dict, recipe: dict | None) -> str:
    """Sec. 2.3.1's claim has two parts. It stays open until the margin and soft-margin controls have run at
    ATTRIBUTION_SEEDS seeds and the recipe-parity grid has run; and while the full model's lr rule picks another
    lr for the baseline (the baseline would then be untuned). Then: the loss's part is supported when Eq. 15 is
    above Eq. 14 on the same model and above both controls (Holm); the modules' part when a single-module row is
    resolved above the baseline (a combination alone is said as such). The claim holds only if both do. The
    recipe confound is closed when the baseline's own lr is the inherited one, or when the full model is still
    resolved above the baseline at its own lr at ATTRIBUTION_SEEDS seeds (grid baseline_retuned)."""
    missing = [k for k in ATTRIBUTION_CONTROLS if controls.get(k, {}).get("n", 0) < ATTRIBUTION_SEEDS]
    if loss is None or missing or recipe is None or recipe["missing"]:
        return "open (controls not all run)"
    retuned = recipe.get("retuned")  # the full model against the baseline at the chosen lr (baseline_retuned)
    if recipe["chosen"] != recipe["inherited"] and not (
            retuned and retuned["n"] >= ATTRIBUTION_SEEDS and retuned["p_holm"] < 0.05 and retuned["mean"] > 0):
        return "open (the baseline's lr is not its own best under the full model's rule)"
    loss_holds = loss["p_holm"] < 0.05 and loss["mean"] > 0 and all(
        controls[k]["p_holm"] < 0.05 and controls[k]["mean"] < 0 for k in ATTRIBUTION_CONTROLS)
    def above(labels) -> bool:
        return any(c["p_holm"] < 0.05 and c["mean"] > 0 for label in labels
                   if (c := table3.get((label, "sysu-all"))) is not None)

    # The paper: each row adds a gain. A single module resolved supports it; only a combination of them, less so.
    single, combined = above(SINGLE_MODULE_ROWS), above(set(TABLE3_ROWS) - set(SINGLE_MODULE_ROWS) - {"table3_full"})
    if loss_holds and single:
        return SUPPORTED
    modules = "supported" if single else ("only together, no single module" if combined else "not resolved")
    return f"not resolved: the loss's part {'supported' if loss_holds else 'not resolved'}, the modules' {modules} (synthetic)"


def attribution_row(table3: dict, table4: dict, controls: dict, recipe: dict | None) -> dict:
    loss = loss_switch(table4, controls)
    modules = [table3[(label, "sysu-all")]["mean"] for label in TABLE3_ROWS
               if label != "table3_full" and (label, "sysu-all") in table3]
    parts = []
    if loss is not None:
        parts.append(f"on the same +TA +CrossViT +CSA model, Eq. 14 -> Eq. 15 gives {loss['mean']:+.2f} mAP "
                     f"[{loss['low']:+.2f}, {loss['high']:+.2f}] (n = {loss['n']})")
    if "control_trihard_m03" in controls:
        m = controls["control_trihard_m03"]
        equal = _equal_text(m)
        parts.append("Eq. 14 at alpha 0.3 against Eq. 15 at alpha 1: " + _delta_text(m) + (f"; {equal}" if equal else ""))
    if "control_trihard_soft" in controls:
        parts.append("Eq. 14 under a soft margin (no hinge) against Eq. 15 at alpha 1: "
                     + _delta_text(controls["control_trihard_soft"]))
    if "control_trihardw_soft" in controls:
        parts.append("Eq. 15 under a soft margin (no alpha) against Eq. 15 at alpha 1: "
                     + _delta_text(controls["control_trihardw_soft"]))
    if modules:
        parts.append(f"the module rows sit between {min(modules):+.2f} and {max(modules):+.2f} (SYSU all-search)")
    run = [CONTROL_ROWS[k] for k in CONTROL_ROWS if k in controls and k != "table4_trihard"]
    parts.append("loss controls run: " + (", ".join(run) if run else "none") + "; " + _recipe_text(recipe))
    return {"claim": "Sec. 2.3.1: the full model's gain comes from its modules (TA, CrossViT, CSA) and the loss",
            "paper": "each Table 3 row adds a gain", "ours": "; ".join(parts),
            "p": "", "verdict": attribution_verdict(table3, loss, controls, recipe),
            "command": _code("python -m reid sweep --grid controls_loss; python -m reid sweep --grid "
                             "recipe_parity --data data/dev-v5")}


def _findings(t3: dict, loss: dict | None, controls: dict) -> str:
    """The summary's sentences on what the synthetic set shows, from what has run."""
    full = t3.get(("table3_full", "sysu-all"))
    if full is None:
        return "Table 3 has not run on the current stand-in yet. "
    module_rows = {label: t3[(label, "sysu-all")] for label in TABLE3_ROWS
                   if label != "table3_full" and (label, "sysu-all") in t3}
    resolved = {label: c for label, c in module_rows.items() if c["p_holm"] < 0.05}
    place = ("above" if full["mean"] > 0 else "below") if full["p_holm"] < 0.05 else "not resolved from"
    text = (f"the full model is {place} the ViT baseline (all-search mAP {full['mean']:+.2f} "
            f"[{full['low']:+.2f}, {full['high']:+.2f}], n = {full['n']}, Holm p {p_text(full['p_holm'])}). ")
    if module_rows:
        means = [c["mean"] for c in module_rows.values()]
        text += (f"The module rows (TA, CrossViT, CSA and their combinations, hard triplet) lie between "
                 f"{min(means):+.2f} and {max(means):+.2f} mAP ({len(resolved)} of {len(module_rows)} resolved "
                 "from the baseline" + ("".join(f"; {TABLE3_ROWS[k]} {c['mean']:+.2f}" for k, c in resolved.items()))
                 + "). ")
    if loss is not None:
        text += (f"On the same +TA +CrossViT +CSA model, Eq. 14 -> Eq. 15 alone gives {loss['mean']:+.2f} mAP "
                 f"(n = {loss['n']}, Holm p {p_text(loss['p_holm'])}). ")
        if loss["p_holm"] < 0.05 and loss["mean"] > 0 and module_rows and not resolved:
            text += "The full model's gain comes with the loss switch, and is not shown to come from the modules. "
    if "control_trihard_m03" in controls:
        m = controls["control_trihard_m03"]
        text += ("The margin control, Eq. 14 at alpha 0.3 against Eq. 15 at alpha 1, gives " + _delta_text(m)
                 + (f"; {_equal_text(m)}" if _equal_text(m) else "") + ". ")
    if "control_trihard_soft" in controls:
        text += ("Eq. 14 under a soft margin, with no hinge to sit open, against Eq. 15 at alpha 1: "
                 + _delta_text(controls["control_trihard_soft"]) + ". ")
    if "control_trihardw_soft" in controls:
        # Eq. 15's own margin: the same weighting under softplus instead of [alpha + gap]_+ (AGW's form).
        text += ("Eq. 15 under a soft margin (AGW's form, no alpha) against Eq. 15 at alpha 1: "
                 + _delta_text(controls["control_trihardw_soft"]) + ". ")
    return text


# ------------------------------------------------------------------------------------------ the page

def _table(rows: list[dict]) -> list[str]:
    def esc(text: str) -> str:
        return str(text).replace("|", "\\|")

    out = [("| # | claim of the paper | the paper's number (real data) | ours (synthetic) | p Holm | verdict "
           "| command |"), "|---|---|---|---|---|---|---|"]
    out += [f"| {i} | {esc(r['claim'])} | {esc(r['paper'])} | {esc(r['ours'])} | {r['p']} | {r['verdict']} | "
            f"{esc(r['command'])} |" for i, r in enumerate(rows, 1)]
    return out


def _inconsistency() -> list[str]:
    """Table 3's '+TA +CrossViT +CSA' and Table 4's 'L_trihard' are one model (Eq. 14 on TA + CrossViT +
    CSA); the paper prints different numbers for it."""
    t3, t4 = _paper("table3"), _paper("table4")
    lines = []
    for setting in ("all-search", "indoor-search"):
        for metric in ("rank1", "mAP"):
            a, b = _value(t3, "+TA +CrossViT +CSA", setting, metric), _value(t4, "L_trihard", setting, metric)
            lines.append(f"- SYSU-MM01 {setting} {metric}: Table 3 {a:.2f}, Table 4 {b:.2f} (gap {b - a:+.2f})")
    # The paper's claimed mAP gains in the same setting: Table 3's rows over its baseline, Table 4's
    # L_trihardw over the other two losses. How many are no larger than this gap?
    below, total = 0, 0
    for setting in ("all-search", "indoor-search"):
        gap = abs(_value(t4, "L_trihard", setting, "mAP") - _value(t3, "+TA +CrossViT +CSA", setting, "mAP"))
        gains = [_value(t3, m, setting, "mAP") - _value(t3, "baseline", setting, "mAP") for m in TABLE3_ROWS.values()]
        gains += [_value(t4, "L_trihardw", setting, "mAP") - _value(t4, m, setting, "mAP") for m in TABLE4_ROWS.values()]
        below += sum(g <= gap for g in gains)
        total += len(gains)
    lines.append(f"- {below} of the paper's {total} claimed mAP gains on SYSU-MM01 (Table 3's rows over its "
                 "baseline, Table 4's L_trihardw over L_trihard and L_center, each against the mAP gap of its own "
                 "setting) are no larger than this disagreement between two printings of one model")
    return lines


def _version(record: dict) -> str:
    """The generator version of a record's data: its own `generator` entry, else its SYSU fingerprint."""
    return str(record["data"].get("generator", {}).get("version")
               or GENERATOR_OF_FINGERPRINT.get(record["protocol"].get("fingerprint"), "not recorded"))


def _fingerprints(records) -> str:
    versions: dict[str, set] = {}
    for r in records:
        versions.setdefault(str(r["protocol"].get("fingerprint")), set()).add(_version(r))
    return ", ".join(f"`{p}` (generator version {', '.join(sorted(v))})" for p, v in sorted(versions.items()))


def _control_table(controls: dict) -> list[str]:
    if not controls:
        return ["No control has run on the current stand-in yet."]
    lines = [("Loss controls on SYSU all-search mAP, each against Eq. 15 at alpha 1 (the full model), paired by seed "
              "(sweep `controls_loss`; Holm over the sweep's comparisons):"), "",
             "| control | mAP: control / Eq. 15 | Δ mAP [95 % t] | n | p Holm | detectable at 80 % power |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {CONTROL_ROWS[k]} | {c['row']:.2f} / {c['base']:.2f} | " + (
        f"{c['mean']:+.2f} [{c['low']:+.2f}, {c['high']:+.2f}] | {c['n']} | {p_text(c['p_holm'])} | {c['mde']:.2f} |"
        if c["n"] >= 2 else f"{c['mean']:+.2f} (one seed: no interval) | 1 | | |") for k, c in controls.items()]
    equal = [f"- {CONTROL_ROWS[k]}: {_equal_text(c)}." for k, c in controls.items() if _equal_text(c)]
    return lines + ["", *equal] if equal else lines


def _weighting_text(c: dict | None) -> list[str]:
    if c is None:
        return ["The weighting alone (Eq. 15 against Eq. 14, both under a soft margin): not run yet."]
    return [("The weighting alone: Eq. 15 against Eq. 14, both under a soft margin (no alpha in either, so they "
             f"differ in Eq. 15's softmax weights only), SYSU all-search mAP: {_ours_holm_text(c)}.")]


def _csa_control(root: Path) -> list[str]:
    """CSA's two controls against the full model (SYSU all-search mAP, Holm over the pair's two protocols):
    the channel bottleneck at C/4 instead of C/16 (grid `controls_csa`) and the paper-size 7x7 spatial kernel
    instead of the grid-sized 3x3 (Table 3's row `table3_full_csa7`; docs/deviations.md, CSA)."""
    lines = []
    for sweep, label, what in (("controls_csa", "control_full_csa_r4",
                                "CSA's channel bottleneck at C/4 instead of C/16 (grid `controls_csa`)"),
                               ("table3", "table3_full_csa7",
                                ("CSA's spatial kernel at the paper's 7x7 instead of the grid-sized 3x3 (Table 3's "
                                 "row `table3_full_csa7`)"))):
        c = _head_to_head(_sweep(root, sweep)[0], "table3_full", label)
        lines.append(f"{what}: not run yet." if c is None else
                     f"{what}, against the full model, SYSU all-search mAP: {_ours_holm_text(c)}.")
    return [line for paragraph in lines for line in (paragraph, "")][:-1]


# The recipe-parity grid (reid.sweep.GRIDS["recipe_parity"]): the baseline at each lr the full model's lr was
# chosen from, one training seed on the development set; the rule that chose the full model's (the best dev mAP).
RECIPE_ROWS = ("control_baseline_lr5e4", "table3_baseline", "control_baseline_lr2e3", "control_baseline_lr4e3")
PROFILE = "smoke"  # the CPU profile every grid here runs on (its lr is the one the baseline inherits)
RETUNED_BASELINE = "control_baseline_lr5e4"  # grid baseline_retuned's baseline: the lr recipe_parity picked


def recipe_choice(root: Path) -> dict | None:
    """{lr: (Rank-1, mAP)} of the baseline on the development set (SYSU all-search, seed 0), the lr the
    full model's rule picks for it (highest mAP) and the lr it inherits; None while the grid has not run."""
    from reid.config import load_config

    frame, _ = _sweep(root, "recipe_parity")
    if frame is None:
        return None
    hits = frame[(frame["protocol"] == "sysu-all") & frame["label"].isin(RECIPE_ROWS)]
    scores = {load_config(r.label, base=PROFILE).optim.lr: (r.rank1, r.mAP) for r in hits.itertuples()}
    if not scores:
        return None
    chosen = max(scores, key=lambda lr: scores[lr][1])
    retuned = None
    if chosen == load_config(RETUNED_BASELINE, base=PROFILE).optim.lr:
        retuned = _head_to_head(_sweep(root, "baseline_retuned")[0], RETUNED_BASELINE, "table3_full")
    return {"scores": dict(sorted(scores.items())), "chosen": chosen, "retuned": retuned,
            "inherited": load_config("table3_baseline", base=PROFILE).optim.lr,
            "seeds": sorted(set(hits["seed"])), "missing": len(RECIPE_ROWS) - len(scores)}


def _recipe_text(recipe: dict | None) -> str:
    if recipe is None:
        return "recipe parity: not run"
    lrs = ", ".join(f"{lr:g}: {m:.2f}" for lr, (_, m) in recipe["scores"].items())
    text = (f"recipe parity: the baseline's dev-set all-search mAP by lr {lrs} (seed {', '.join(map(str, recipe['seeds']))}"
            + (f"; {recipe['missing']} lr not run yet" if recipe["missing"] else "") + "): ")
    if recipe["chosen"] == recipe["inherited"]:
        return text + f"the full model's rule picks {recipe['chosen']:g} for the baseline too, the lr it ran at"
    return (text + f"the full model's rule picks {recipe['chosen']:g} for the baseline, not the {recipe['inherited']:g} "
            "it ran at in Tables 3-4")


def _recipe_table(recipe: dict | None) -> list[str]:
    if recipe is None:
        return ["Recipe parity: grid `recipe_parity` has not run yet."]
    lines = [("Recipe parity on the development set (data seed 7, `data/dev-v5`), the ViT baseline at each learning "
              "rate of the full model's search, SYSU all-search, training seed "
              f"{', '.join(map(str, recipe['seeds']))} (sweep `recipe_parity`): "), "",
             "| lr | Rank-1 | mAP | |", "|---|---|---|---|"]
    lines += [f"| {lr:g} | {r1:.2f} | {m:.2f} | " + ", ".join(
        w for w, on in (("chosen by the rule (highest mAP)", lr == recipe["chosen"]),
                        ("Tables 3-4 ran the baseline at this lr", lr == recipe["inherited"])) if on) + " |"
              for lr, (r1, m) in recipe["scores"].items()]
    lines += ["", _recipe_text(recipe)[0].upper() + _recipe_text(recipe)[1:] + " (one training seed: a "
              "difference of a few points between learning rates is within this profile's seed-to-seed spread)."]
    if recipe["chosen"] == recipe["inherited"]:
        return lines
    c = recipe["retuned"]  # None: not run, or the grid's row is another lr than the chosen one
    return [*lines, "", "The full model against the baseline at that lr on the default draw (grid `baseline_retuned`), "
            "SYSU all-search mAP: " + ("not run yet." if c is None else _ours_holm_text(c) + ".")]


BUDGET_SWEEPS = ("budget", "budget_long", "table3")  # Table 3's own trainings are the 3600-step point


def budget_curve(root: Path, row: str = "table3_full", base: str = "table3_baseline"):
    """`row` against `base` at each training budget (the budget grids' seeds; Table 3's trainings at its
    budget), SYSU all-search mAP, paired by seed, Holm over the budgets; None while no budget grid has run."""
    import pandas as pd

    frames = {name: _sweep(root, name)[0] for name in BUDGET_SWEEPS}
    if frames["budget"] is None and frames["budget_long"] is None:
        return None
    grid_seeds = set().union(*(set(f["seed"]) for n, f in frames.items() if f is not None and n != "table3"))
    frame = pd.concat([f for f in frames.values() if f is not None], ignore_index=True)
    frame = frame[(frame["protocol"] == "sysu-all") & frame["label"].isin([row, base]) & frame["seed"].isin(grid_seeds)]
    frame = frame.drop_duplicates(["label", "protocol", "budget", "seed"], keep="first")
    pairs = paired_frame(frame, base, "mAP")
    return pairs.sort_values("budget").reset_index(drop=True) if len(pairs) else None


def settled(curve) -> str:
    """The ranking has settled when the two largest budgets measured both resolve it (Holm) the same way."""
    if curve is None or len(curve) < 2:
        return "open (fewer than two budgets measured)"
    last = curve.iloc[-2:]
    if (last["p_holm"] < 0.05).all() and len(set(last["mean"] > 0)) == 1:
        return (f"settled: the full model is {'above' if last['mean'].iloc[-1] > 0 else 'below'} the baseline at "
                f"both of the largest budgets measured ({int(last['budget'].iloc[0])} and {int(last['budget'].iloc[1])} steps)")
    return "not settled: the two largest budgets measured do not both resolve it the same way"


def _budget_table(root: Path) -> list[str]:
    curve = budget_curve(root)
    if curve is None:
        return ["The budget curve (grids `budget`, `budget_long`) has not run yet."]
    lines = [("The full model against the ViT baseline at each training budget, SYSU all-search mAP, paired by "
              "seed (grids `budget` and `budget_long`; 3600 steps is Table 3's training, at the same seeds; Holm "
              "over the budgets):"), "",
             "| training steps | mAP: full / baseline | Δ mAP [95 % t] | n | p Holm |", "|---|---|---|---|---|"]
    lines += [f"| {int(c.budget)} | {c.row_mean:.2f} / {c.base_mean:.2f} | " + (
        f"{c.mean:+.2f} [{c.low:+.2f}, {c.high:+.2f}] | {c.n} | {p_text(c.p_holm)} |" if c.n >= 2
        else f"{c.mean:+.2f} (one seed: no interval) | 1 | |") for c in curve.itertuples()]
    return [*lines, "", f"The ranking: {settled(curve)}."]


# The primary comparisons over synthetic data draws (issue 32): Table 3's draw is data seed 0, the grids
# data_seed1 / data_seed2 (reid.sweep.GRIDS) the others; each comparison is (row, its baseline), SYSU all-search mAP.
DATA_SEED_SWEEPS = {0: "table3", 1: "data_seed1", 2: "data_seed2"}
DATA_SEED_COMPARISONS = {"the full model against the ViT baseline": ("table3_full", "table3_baseline"),
                         "Eq. 15 against Eq. 14 on the same model": ("table3_full", "table4_trihard")}
# Eq. 14's row on Table 3's draw is Table 3's +TA +CrossViT +CSA (the same training, read under its own name).
DATA_SEED_ALIASES = {"table4_trihard": "table3_ta_crossvit_csa"}


def _all_search_map(frame, label: str) -> dict:
    """{training seed: SYSU all-search mAP} of a row (or of its alias: the same training under another name)."""
    hits = frame[(frame["protocol"] == "sysu-all") & frame["label"].isin([label, DATA_SEED_ALIASES.get(label, label)])]
    return dict(zip(hits["seed"], hits["mAP"]))


def data_seed_differences(root: Path, row: str, base: str) -> dict:
    """{data seed: {training seed: row - base}} on SYSU all-search mAP, over the draws that have run."""
    out = {}
    for data_seed, name in DATA_SEED_SWEEPS.items():
        frame, _ = _sweep(root, name)
        if frame is None:
            continue
        a, b = _all_search_map(frame, row), _all_search_map(frame, base)
        diffs = {seed: a[seed] - b[seed] for seed in sorted(set(a) & set(b))}
        if diffs:
            out[data_seed] = diffs
    return out


def _data_seed_table(root: Path) -> list[str]:
    from reid.records.stats import data_seed_components

    lines = [("Each primary comparison on three synthetic draws (data seeds 0, 1, 2: grids `table3`, `data_seed1`, "
              "`data_seed2`), at the training seeds every draw has run, SYSU all-search mAP. The interval is a "
              "t interval over the draws' means (it generalises over draws); the share is the data seeds' part of "
              "the variance of a difference (one-way random effects, `reid.records.stats.data_seed_components`)."),
             "", ("| comparison | data seeds × training seeds | Δ mAP [95 % t over draws] | per draw | "
                  "share of variance from data seeds |"), "|---|---|---|---|---|"]
    for title, (row, base) in DATA_SEED_COMPARISONS.items():
        diffs = data_seed_differences(root, row, base)
        seeds = sorted(set.intersection(*(set(d) for d in diffs.values()))) if diffs else []
        draws = {d: [v[s] for s in seeds] for d, v in diffs.items()}
        if len(draws) < 2 or len(seeds) < 2:
            ran = ", ".join(f"data seed {d}: {len(v)}" for d, v in diffs.items()) or "none"
            lines.append(f"| {title} | open (training seeds run per draw: {ran}) | | | |")
            continue
        c = data_seed_components(draws)
        per_draw = "; ".join(f"{d}: {sum(v) / len(v):+.2f}" for d, v in draws.items())
        lines.append(f"| {title} | {c['data_seeds']} × {c['training_seeds']} (seeds {', '.join(map(str, seeds))}) "
                     f"| {c['mean']:+.2f} [{c['low']:+.2f}, {c['high']:+.2f}] | {per_draw} | "
                     f"{100 * c['share_data']:.0f} % |")
    return lines


def claims_markdown(root=None) -> str:
    """The page, from the committed records under `root` (default: this repository)."""
    root = _root(root)
    t3_rows, t3 = gain_rows(root, "table3")
    t4_rows, t4 = gain_rows(root, "table4")
    controls = control_comparisons(root)
    recipe = recipe_choice(root)
    rows = [*headline_rows(root), *sota_rows(root), *t3_rows, *t4_rows, *figure_rows(root, t3),
            attribution_row(t3, t4, controls, recipe)]
    attribution = rows[-1]["verdict"]
    records = [json.loads(p.read_text()) for p in sorted((root / "results" / "sweeps").glob("table[34]/*.json"))
               if p.name != "grid.json"]
    records += [json.loads(p.read_text()) for p in sorted((root / "results").glob("reproduce_smoke_*_trained.json"))]
    prints = _fingerprints(records)
    versions = sorted({_version(r) for r in records})
    kinds = sorted({r["data"]["kind"] for r in records})
    pretrained = sorted({str(r["protocol"].get("pretrained")).removeprefix("file ") for r in records})
    start = ("trained from scratch" if pretrained == ["none"] else
             f"fine-tuned from {', '.join(f'`{p}`' for p in pretrained)} (`docs/pretraining.md`)")
    profiles = sorted({str(r["protocol"].get("config")).rpartition("@")[2] for r in records})
    counts = {v: sum(r["verdict"].startswith(v) for r in rows)
              for v in ("supported", "contradicted", "not resolved", "untestable", "open")}
    text = [
        "# Which of the paper's claims hold here",
        "",
        ("Written by `python -m reid claims` (`reid/records/claims.py`) from the committed records; do not edit "
        "(`tests/test_claims.py` fails when this page and the records disagree)."),
        "",
        "**What the reproduction found.** "
        f"Of {len(rows)} claims, {counts['supported']} are supported, {counts['contradicted']} contradicted, "
        f"{counts['not resolved']} not resolved, {counts['untestable']} untestable without the real datasets "
        f"and {counts['open']} open. Every number of ours is on the synthetic stand-in (data kind: "
        f"{', '.join(kinds)}; generator version {', '.join(versions)}, `docs/synthetic.md`; dataset fingerprints "
        f"{prints}), {start}, at the CPU profile {', '.join(f'`{p}`' for p in profiles)}: none is a SYSU-MM01 or "
        "RegDB number, so the paper's headline numbers and its state-of-the-art claims are untestable here. What "
        "the synthetic set does show: " + _findings(t3, loss_switch(t4, controls), controls)
        + (("What carries the gain (the modules, the loss, its margin, a recipe tuned on one row) stays open until "
            "the controls below have all run. ") if attribution.startswith("open") else
           f"What carries the gain, with the controls below run: {attribution}. ")
        + "The version-4 verdicts (trained from scratch) are superseded: `results/superseded/v4/`.",
        "",
        ("How to read it: *ours* is a seed-paired difference on the seeds both rows share (both means over those "
        "seeds), with its unadjusted 95 % t interval and n; *p Holm* is the paired t test's p-value adjusted by "
        "Holm's method over every comparison of its table (sweep) on that metric, the same family as the sweep's "
        "`summary.md`; *detectable at 80 % power* is the smallest true difference a paired t test at that n and sd "
        "finds 4 times in 5 (noncentral t, two-sided 0.05). SYSU all- and indoor-search (and RegDB V→T and T→V) "
        "are two evaluations of the same trained models: two rows that agree are one finding, not two. The "
        "paper's numbers are one run each on the real data. Tables 3 and 4 are judged on mAP (Rank-1 beside it in "
        "each sweep's `summary.md`); Table 3's row labels are a reading of Sec. 2.3.1 (`results/paper/README.md`)."),
        "",
        *_table(rows),
        "",
        "## Loss or modules, margin, recipe: the controls",
        "",
        ((f"The attribution above ({attribution}) rests on three confounds' controls, each a "
          if not attribution.startswith("open") else
          "The attribution above is not settled by what has run. Three confounds, each with a control defined as a "
          ) + "sweep grid in `reid/sweep.py` (configs in `reid/configs/control_*.yaml`); what has run is in the "
         "table after them:"),
        "",
        ("- *Margin.* At equal alpha, Eq. 15's hinge is never larger than Eq. 14's (a softmax-weighted mean of the "
        "positive distances is at most their maximum, of the negative distances at least their minimum; "
        "`tests/test_losses.py`), so Eq. 14 at alpha = 1 pushes harder than Eq. 15 at alpha = 1. Grid "
        "`controls_loss`: Eq. 14 at alpha 0.1, 0.3, 0.5 (and 1.0, Table 4's row), Eq. 15 with AGW's soft margin "
        "(softplus, no alpha), against Eq. 15 at alpha 1. What the logs add: every Eq. 14 run on the stand-in "
        "collapses (its triplet term stays at alpha + 0.03 from epoch 2 on, the hinge open for every anchor), so "
        "its margin cannot act; Eq. 15 does not collapse (`docs/deviations.md`, Losses; notebook 07's hinge "
        "cell). The batch-hard triplet that cannot collapse onto its hinge is Eq. 14 under a soft margin "
        "(softplus, no alpha; Hermans et al.), in the same grid."),
        ("- *Recipe.* The smoke profile's learning rate was chosen on the full model only (`docs/recipe_search.md`); "
        "the baseline and the L_trihard rows inherit it untuned. Grid `recipe_parity`: the baseline at the same lr "
        "grid (5e-4, 1e-3, 2e-3, 4e-3), one training seed, on the same development set (data seed 7), as the full model's lr was "
        "chosen."),
        ("- *Modules.* Only once the two above are run can a module row's difference be read as the module's. "
        "And on the smoke profile CSA's channel bottleneck (C/16: 3 and 6 units at the micro widths) mostly dies "
        "in training, leaving a constant channel gate: a +CSA row there tests mostly the spatial gate "
        "(`docs/deviations.md`, CSA)."),
        "",
        *_control_table(controls),
        "",
        *_weighting_text(weighting_alone(root)),
        "",
        *_recipe_table(recipe),
        "",
        *_csa_control(root),
        "",
        "## Has the ranking settled? The budget curve",
        "",
        *_budget_table(root),
        "",
        "## Data seeds as a factor",
        "",
        *_data_seed_table(root),
        "",
        "## The paper's own tables disagree",
        "",
        ("Table 3's '+TA +CrossViT +CSA' row and Table 4's 'L_trihard' row describe the same model (TA + CrossViT + "
        "CSA trained with the batch-hard triplet, Eq. 14; here they are one training, `table4_trihard` reuses "
        "`table3_ta_crossvit_csa`), yet the paper prints different numbers:"),
        "",
        *_inconsistency(),
        "",
        ("Statistics: `reid/records/stats.py`. Per-sweep tables: `results/sweeps/*/summary.md` "
        "(`python -m reid sweep --grid NAME --summary-only` rewrites one from its runs.csv)."),
    ]
    return "\n".join(text) + "\n"


def write_claims(root=None, out: str | Path | None = None) -> Path:
    """Write `claims_markdown` to `docs/claims.md` (or `out`)."""
    root = _root(root)
    path = Path(out) if out is not None else root / "docs" / "claims.md"
    path.write_text(claims_markdown(root), encoding="utf-8")
    print(f"{path}: written from the records in {root / 'results'}")
    return path
