"""`python -m reid compare A.json B.json ...`: result cards side by side, and whether the numbers compare.

    print(compare(["results/a.json", "results/b.json"]))

One row per card field (`reid.records.card`), one column per result, then two verdict columns:
- between results: "same"; "DIFFERS" for a protocol field (the numbers are not comparable); "differs
  (model)" for a model field (pretrained weights, preset, config, seed, epoch: what a comparison of two
  models is about); "unknown" where a card does not say (a result from before the card);
- paper: how the field stands against the paper's protocol (PAPER): "= paper", "differs: A, B", or
  "paper: not stated" where the paper does not say (the test feature, flip, the gallery sampler, model
  selection, ...). The paper's protocol: real SYSU-MM01, single-shot, 10 trials, all- and indoor-search,
  no re-ranking; real RegDB, 10 splits, both directions.
Then the metrics (mean ± std over trials / splits) and a one-line verdict, and a note under it when a card's epoch
was chosen on the test set (`train.test_every`, the lineage's reporting: docs/agw.md).
"""

from __future__ import annotations

import json
from pathlib import Path

from reid.records.card import (
    LINEAGE_SELECTION,
    MODEL_FIELDS,
    NOT_APPLICABLE,
    PROTOCOL_FIELDS,
    REGDB_ONLY,
    REGDB_SAMPLER,
    SYSU_ONLY,
    UNKNOWN,
    show,
)
from reid.utils.errors import UserError

LINEAGE_PREFIX = LINEAGE_SELECTION.split(":")[0] + ":"
METRICS = (("rank1", "Rank-1"), ("rank5", "Rank-5"), ("rank10", "Rank-10"), ("rank20", "Rank-20"),
           ("mAP", "mAP"), ("mINP", "mINP"))
NOT_STATED = "paper: not stated"
# The paper's protocol, per field: the accepted values (shown values, as `reid.records.card.show` prints them), or
# None where the paper does not state it. Fields of the other dataset are "n/a" in a result and skipped.
PAPER = {
    "data": ({"SYSU-MM01", "RegDB"}, "real SYSU-MM01 / RegDB"),
    "dataset": ({"sysu", "regdb"}, "sysu, regdb"),
    "mode": ({"all", "indoor"}, "all and indoor"),
    "shots": ({"1"}, "1 (single-shot)"),
    "trials": ({"10"}, "10"),
    "splits": ({"10"}, "10"),
    "direction": ({"v2t", "t2v"}, "both"),
    "rerank": ({"no"}, "no"),
    "weights": ({"trained"}, "trained"),
}
# Fields that say which data copy, run or checkpoint a result is, not how it was measured: no paper question.
NOT_PAPER_FIELDS = {"fingerprint", "config", "seed", "epoch", "steps"}


def load_result(path: str | Path) -> dict:
    """A result JSON (as `python -m reid evaluate` and `write_result` write them); any other file is a
    one-line `UserError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such result file (expected a result JSON, e.g. results/<name>.json)")
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise UserError(f"{path}: not readable JSON ({err})") from None
    except RecursionError:  # thousands of nested brackets: no result is shaped like that
        raise UserError(f"{path}: not an evaluation result (JSON nested too deeply to read)") from None
    if not (isinstance(result, dict) and isinstance(result.get("data"), dict)
            and isinstance(result.get("protocol"), dict) and "rank1" in result and "mAP" in result):
        raise UserError(f"{path}: not an evaluation result (expected the JSON `python -m reid evaluate` writes, "
                        "with rank1, mAP, data and protocol)")
    return result


def _values(result: dict) -> dict:
    """Every compared field of one result, as shown; a result from before the card lacks most fields
    ("unknown"), except those of the other dataset's protocol ("n/a")."""
    protocol = result["protocol"]
    dataset = protocol.get("dataset") or {"SYSU-MM01": "sysu", "RegDB": "regdb"}.get(result["data"].get("dataset"))
    other = {"sysu": REGDB_ONLY, "regdb": SYSU_ONLY}.get(dataset, ())
    out = {"data": show(result["data"].get("label")), "weights": show(result.get("weights", "trained"))}
    out.update({key: NOT_APPLICABLE if key in other and key not in protocol else show(protocol.get(key))
                for key, _ in PROTOCOL_FIELDS + MODEL_FIELDS})
    if dataset and out["dataset"] == UNKNOWN:
        out["dataset"] = dataset
    if dataset == "regdb" and out["gallery_sampler"] == UNKNOWN:  # RegDB never draws a gallery
        out["gallery_sampler"] = REGDB_SAMPLER
    return out


def _between(values: list[str], model_field: bool) -> str:
    if len(values) < 2:
        return "-"
    if any(v == UNKNOWN for v in values):
        return UNKNOWN
    if len(set(values)) == 1:
        return "same"
    return "differs (model)" if model_field else "DIFFERS"


def _vs_paper(key: str, values: list[str], letters: list[str]) -> str:
    if key in NOT_PAPER_FIELDS:
        return "-"
    if key not in PAPER:
        return NOT_STATED
    accepted, described = PAPER[key]
    differ = [letter for letter, v in zip(letters, values) if v not in (NOT_APPLICABLE, UNKNOWN, *accepted)]
    unknown = [letter for letter, v in zip(letters, values) if v == UNKNOWN]
    if differ:
        return f"differs: {', '.join(differ)} (paper: {described})"
    return f"unknown: {', '.join(unknown)}" if unknown else "= paper"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [" | ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return lines


def _metric(result: dict, key: str) -> str:
    if not isinstance(result.get(key), (int, float)):
        return UNKNOWN
    std = result.get("std")
    std = std.get(key) if isinstance(std, dict) else None  # a hand-edited result may hold anything there
    return f"{result[key]:.2f} ± {std:.2f}" if isinstance(std, (int, float)) else f"{result[key]:.2f}"


def compare(paths: list[str | Path]) -> str:
    """The side-by-side table of the results' cards and metrics, ending with a one-line verdict."""
    if not paths:
        raise UserError("compare: name at least one result JSON")
    results = [load_result(p) for p in paths]
    letters = [chr(ord("A") + i) if i < 26 else f"R{i + 1}" for i in range(len(results))]
    values = [_values(r) for r in results]
    fields = [("data", "data", False), ("weights", "weights", True),
              *((k, t, False) for k, t in PROTOCOL_FIELDS), *((k, t, True) for k, t in MODEL_FIELDS)]

    rows = [["field", *letters, "between results", "vs the paper's protocol"]]
    differ, unknown, paper_differ, paper_unknown, not_stated, model_differ = [], [], [], [], [], []
    for key, title, model_field in fields:
        shown = [v[key] for v in values]
        if all(v == NOT_APPLICABLE for v in shown):
            continue
        between, paper = _between(shown, model_field), _vs_paper(key, shown, letters)
        rows.append([title, *shown, between, paper])
        (differ if between == "DIFFERS" else unknown if between == UNKNOWN else
         model_differ if between == "differs (model)" else []).append(title)
        (paper_differ if paper.startswith("differs") else paper_unknown if paper.startswith(UNKNOWN) else
         not_stated if paper == NOT_STATED else []).append(title)
    rows.append(["metric (%, mean ± std)", *[""] * len(results), "", ""])
    rows += [[title, *[_metric(r, key) for r in results], "", ""] for key, title in METRICS]

    lines = [f"{letter} = {path}: {result.get('label', '')}" for letter, path, result in zip(letters, paths, results)]
    lines += ["", *_table(rows), "", _verdict(len(results), differ, unknown, model_differ, paper_differ, paper_unknown,
                                       not_stated)]
    on_test = [letter for letter, v in zip(letters, values) if v["model_selection"].startswith(LINEAGE_PREFIX)]
    if on_test:  # the selection that looked at the test set: say what it means, not only that it differs
        lines.append(f"note: {', '.join(on_test)} chose the epoch by its Rank-1 on the test set (the lineage's "
                     "reporting: AGW, PMT, DEEN): optimistic; compare such numbers only with others chosen that way")
    return "\n".join(lines)


def _verdict(count: int, differ, unknown, model_differ, paper_differ, paper_unknown, not_stated) -> str:
    if count < 2:
        between = "one result"
    elif differ:
        between = f"NOT comparable with each other (protocol differs: {', '.join(differ)})"
    elif unknown:
        between = f"comparable with each other as far as the cards say (unknown: {', '.join(unknown)})"
    else:
        between = "comparable with each other"
        if model_differ:
            between += f" (same protocol; models differ in {', '.join(model_differ)})"
    if paper_differ:
        paper = f"NOT comparable with the paper (differs: {', '.join(paper_differ)})"
    elif paper_unknown:
        paper = f"comparable with the paper as far as the cards say (unknown: {', '.join(paper_unknown)})"
    else:
        paper = "comparable with the paper on every field it states"
    return f"verdict: {between}; {paper}; paper: not stated for {len(not_stated)} fields ({', '.join(not_stated)})"
