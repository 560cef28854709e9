"""Mean ± std tables of `results.csv`: `results.md` (Markdown) and `results.tex` (LaTeX) beside it.

`reid.records.provenance.write_result` rewrites both after every row it appends (under the folder's lock, so
parallel recordings never interleave), so they always say what the CSV says; `write_tables("results")`
rewrites them by hand (e.g. after two results.csv were merged).

A table row is one run name under one protocol, over training seeds:
- run name: the card's `config` (the run's config name, e.g. `table3_ta@smoke`); a CSV row without one (a
  result from before the protocol card, a model without its training config) is its own run, under its
  result name;
- protocol: data and its fingerprint, setting, trials / splits, weights, test feature, flip, re-ranking,
  model selection, training ids, pretrained weights, preset and gallery sampler. Rows that differ in any
  of them are never averaged together;
- each training seed counts once (its latest row); rows whose seed is unknown count one each.
A cell is the mean ± sample std (n - 1, as the notebooks' ablation tables) over seeds of each seed's mean
over trials / splits; a single seed shows its value alone.

A row whose result name was recorded again later is *superseded* (e.g. `make reproduce` re-run on a newer
profile): the tables leave it out of the current rows and list it, dated, under "Superseded".
"""

from __future__ import annotations

import csv
import os
import statistics
from pathlib import Path

from reid.utils.errors import UserError

METRICS = (("rank1", "Rank-1"), ("rank5", "Rank-5"), ("rank10", "Rank-10"), ("rank20", "Rank-20"),
           ("mAP", "mAP"), ("mINP", "mINP"))
PROTOCOL_COLUMNS = ("data", "fingerprint", "setting", "trials", "splits", "weights", "test_feature", "flip",
                    "rerank", "model_selection", "train_ids", "pretrained", "preset", "gallery_sampler")
HEADER = ("run", "model", "data", "protocol", "seeds", *(title for _, title in METRICS))
UNKNOWN = ("", "unknown", "n/a")


def _known(value) -> bool:
    return value not in UNKNOWN and value is not None


def _protocol_text(row: dict) -> str:
    parts = [row.get("setting") or "unknown setting"]
    for column in ("trials", "splits"):
        if _known(row.get(column)):
            parts.append(f"{row[column]} {column if row[column] != '1' else column[:-1]}")
    feature = row.get("test_feature")
    parts.append({"before_bn": "before-BN feature", "after_bn": "after-BN feature"}.get(feature, "feature unknown"))
    if row.get("flip") == "True":
        parts.append("flip")
    if row.get("rerank") not in (None, "", "False"):  # the card's variant text (reid.eval.rerank.card_value)
        parts.append("re-ranked (literal Eq. 7)" if "literal" in row["rerank"] else "re-ranked")
    if row.get("weights") == "untrained":
        parts.append("untrained")
    if _known(row.get("model_selection")):
        parts.append(row["model_selection"])
    if _known(row.get("train_ids")) and row["train_ids"] != "all":
        parts.append(f"training ids {row['train_ids']}")
    return ", ".join(parts)


def _cell(values: list[float]) -> str:
    if not values:
        return ""
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def table_rows(rows: list[dict]) -> list[dict]:
    """The CSV rows grouped by run name and protocol, in the order each group first appears: one dict per
    group with the table's columns (HEADER), metric cells as "mean ± std" over its seeds."""
    groups: dict[tuple, dict[str, dict]] = {}
    for i, row in enumerate(rows):
        run = row["config"] if _known(row.get("config")) else row.get("name", "")
        key = (run, *(row.get(column, "") for column in PROTOCOL_COLUMNS))
        seed = row.get("seed", "")
        by_seed = groups.setdefault(key, {})
        seed_key = seed if _known(seed) else f"#{i}"
        by_seed.pop(seed_key, None)  # the seed's latest row replaces an earlier one
        by_seed[seed_key] = row
    out = []
    for key, by_seed in groups.items():
        first = next(iter(by_seed.values()))
        seeds = sorted((s for s in by_seed if not s.startswith("#")), key=lambda s: (len(s), s))
        unknown = len(by_seed) - len(seeds)
        data = first.get("data") or "unknown data"
        model = ", ".join(first[c] for c in ("preset", "pretrained") if _known(first.get(c))) or "unknown"
        out.append({
            "run": key[0], "model": model,
            "data": f"{data} ({first['fingerprint']})" if _known(first.get("fingerprint")) else data,
            "protocol": _protocol_text(first),
            "seeds": ", ".join([*seeds, *([f"{unknown} unknown"] if unknown else [])]),
            **{title: _cell([float(r[m]) for r in by_seed.values() if r.get(m) not in ("", None)])
               for m, title in METRICS},
        })
    return out


def split_superseded(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """(current, superseded): a CSV row is superseded when a later row has the same result name."""
    last = {row.get("name"): i for i, row in enumerate(rows)}
    current = [row for i, row in enumerate(rows) if last[row.get("name")] == i]
    return current, [row for i, row in enumerate(rows) if last[row.get("name")] != i]


SUPERSEDED_HEADER = ("result name", "date", "commit", "protocol", "Rank-1", "mAP")


def markdown_table(rows: list[dict], superseded: list[dict] = ()) -> str:
    def line(cells):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    note = ("Written by `reid.records.tables` from `results.csv` after every recorded result: one row per run name and "
            "protocol, mean ± sample std over training seeds (a seed measured twice counts once, its latest "
            "row). Synthetic-layout numbers are not SYSU-MM01 or RegDB numbers.")
    text = ["# Results: mean ± std over training seeds", "", note, "", line(HEADER), line(["---"] * len(HEADER))]
    text += [line(row[h] for h in HEADER) for row in rows]
    if superseded:
        text += ["", "## Superseded", "",
                 "Rows of `results.csv` whose result name was recorded again later; not current, kept for the record.",
                 "", line(SUPERSEDED_HEADER), line(["---"] * len(SUPERSEDED_HEADER))]
        text += [line([r.get("name"), r.get("date"), (r.get("commit") or "")[:7], _protocol_text(r), r.get("rank1"),
                       r.get("mAP")]) for r in superseded]
    return "\n".join(text) + "\n"


LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _latex(text: str) -> str:
    out = "".join(LATEX_SPECIALS.get(ch, ch) for ch in str(text))
    if " ± " in out:  # a metric cell
        mean, std = out.split(" ± ")
        return f"${mean} \\pm {std}$"
    return out.replace("±", r"$\pm$").replace("→", r"$\to$")


def latex_table(rows: list[dict]) -> str:
    text = ["% Written by reid.records.tables from results.csv: mean +- sample std over training seeds (do not edit).",
            r"\begin{tabular}{" + "l" * 5 + "r" * len(METRICS) + "}", r"\hline",
            " & ".join(_latex(h) for h in HEADER) + r" \\", r"\hline"]
    text += [" & ".join(_latex(row[h]) for h in HEADER) + r" \\" for row in rows]
    text += [r"\hline", r"\end{tabular}"]
    return "\n".join(text) + "\n"


def _write(path: Path, text: str) -> None:
    from reid.utils.atomic import temp_path

    tmp = temp_path(path)  # a name of its own: two processes rewriting the tables never share a temporary file
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise UserError(f"{path}: cannot write the table ({err.strerror or err}); results.csv has the row") \
            from None


def write_tables(results_dir: str | Path) -> tuple[Path, Path]:
    """Rewrite `<results_dir>/results.md` and `results.tex` from `<results_dir>/results.csv`, holding the
    folder's lock (`reid.records.provenance.results_lock`) so that no result is recorded half-way through."""
    from reid.records.provenance import results_lock

    with results_lock(Path(results_dir)):
        return write_tables_unlocked(results_dir)


def write_tables_unlocked(results_dir: str | Path) -> tuple[Path, Path]:
    """`write_tables` for a caller that holds the lock already (`write_result`)."""
    results_dir = Path(results_dir)
    csv_path = results_dir / "results.csv"
    try:
        with open(csv_path, newline="", encoding="utf-8") as f:
            current, superseded = split_superseded(list(csv.DictReader(f)))
        rows = table_rows(current)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise UserError(f"{csv_path}: cannot read it to write the tables ({err})") from None
    except ValueError as err:
        raise UserError(f"{csv_path}: a metric cell is not a number ({err})") from None
    md, tex = results_dir / "results.md", results_dir / "results.tex"
    _write(md, markdown_table(rows, superseded))
    _write(tex, latex_table(rows))
    return md, tex


def paper_rows(table: str):
    """The paper's own numbers for `table` (results/paper/<table>.csv: method, setting, metric, value), kept
    apart from ours and labelled as the paper's wherever they are shown."""
    import pandas as pd

    from reid.records.provenance import repo_root

    return pd.read_csv(repo_root() / "results" / "paper" / f"{table}.csv")
