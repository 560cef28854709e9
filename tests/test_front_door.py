"""The front door: a short README whose numbers are the committed records', links that resolve, the licence
pyproject.toml names, and a citation file that parses."""

import csv
import json
import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_the_readme_is_short():
    assert len(README) <= 10_000, f"README.md has {len(README)} characters: move detail to a docs/ page"


def test_every_relative_link_of_the_readme_and_the_docs_resolves():
    broken = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+://", target):
                continue
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            if not resolved.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
            elif anchor and resolved.suffix == ".md":
                headings = [re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-")
                            for h in re.findall(r"^#+ (.+)$", resolved.read_text(encoding="utf-8"), re.MULTILINE)]
                if anchor not in headings:
                    broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "links that do not resolve: " + ", ".join(broken)


def test_every_docs_page_is_in_the_index():
    index = (ROOT / "docs" / "README.md").read_text(encoding="utf-8")
    missing = [p.name for p in (ROOT / "docs").glob("*.md") if p.name != "README.md" and f"]({p.name})" not in index]
    assert not missing, f"docs/README.md does not list {missing}"


def test_the_readme_tables_every_notebook():
    names = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert len(names) == 9 and "nine notebooks" in README and "eight notebooks" not in README
    assert re.findall(r"^\| `(\d\d_\w+)` \|", README, re.MULTILINE) == names


def _pair(record: dict) -> str:
    return f"{record['rank1']:.2f} / {record['mAP']:.2f}"


def _paper(table: str, setting: str) -> str:
    rows = list(csv.DictReader((ROOT / "results" / "paper" / f"{table}.csv").open(encoding="utf-8")))
    value = {r["metric"]: r["value"] for r in rows if r["method"] == "Ours (paper)" and r["setting"] == setting}
    return f"{value['rank1']} / {value['mAP']}"


def test_the_results_table_copies_the_committed_records():
    """Each row: the paper's own number (results/paper/), ours and the untrained network's from
    results/reproduce_smoke.json, with the command that record names."""
    record = json.loads((ROOT / "results" / "reproduce_smoke.json").read_text())
    rows = {
        "SYSU-MM01 all-search": (_paper("table1", "all-search"), record["sysu"]["all_trained"], record["sysu"]["all_untrained"]),
        "SYSU-MM01 indoor-search": (_paper("table1", "indoor-search"), record["sysu"]["indoor_trained"], record["sysu"]["indoor_untrained"]),
        "RegDB visible→thermal": (_paper("table2", "visible-to-infrared"), record["regdb"]["v2t_trained"], record["regdb"]["v2t_untrained"]),
        "RegDB thermal→visible": (_paper("table2", "infrared-to-visible"), record["regdb"]["t2v_trained"], record["regdb"]["t2v_untrained"]),
    }
    section = README.split("## Results", 1)[1].split("\n## ", 1)[0]
    assert "synthetic" in section and "results/reproduce_smoke.json" in section
    for label, (paper, trained, untrained) in rows.items():
        line = next(line for line in section.splitlines() if line.startswith(f"| {label}"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[1:4] == [paper, _pair(trained), _pair(untrained)], line
        assert trained["data"]["kind"] == "synthetic" and not trained["protocol"]["rerank"]
        assert trained["provenance"]["command"] == "python -m reid reproduce --profile smoke"
        assert cells[4] == "`make reproduce`" and "no re-ranking" in cells[0]
        log = f"results/runs/{trained['runs'][0]}/log.csv"  # the training log behind the number, committed
        assert cells[5] == f"[log]({log})" and (ROOT / log).is_file(), line
        if label.startswith("SYSU"):
            assert trained["protocol"]["trials"] == 10 and trained["protocol"]["shots"] == 1
            assert "single-shot, 10 trials" in cells[0]
    assert "`make reproduce` is `python -m reid reproduce --profile smoke`" in README


def test_the_licence_is_the_one_pyproject_names():
    assert PROJECT["license"] == "MIT"
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n") and "Copyright (c) 2026 the reid authors" in text


def test_the_citation_file_parses_and_cites_the_paper():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert cff["cff-version"] == "1.2.0"
    assert {"message", "title", "authors"} <= set(cff) and cff["type"] == "software"
    assert cff["version"] == PROJECT["version"] and cff["license"] == PROJECT["license"]
    (paper,) = cff["references"]
    assert paper["title"] == "Cross-modal person re-identification based on fused attention and feature enhancement"
    assert paper["authors"][0] == {"family-names": "Huang", "given-names": "Chihan"}
    assert (paper["year"], paper["volume"], str(paper["issue"]), paper["start"], paper["end"]) == (2024, 16, "4", 451, 460)
    bibtex = README.split("```bibtex\n", 1)[1].split("```", 1)[0]
    for field in (paper["title"], "Huang, Chihan", "2024", "{16}", "{4}", "451--460"):
        assert field in bibtex, field


def test_make_lab_refuses_a_taken_port_in_one_line_instead_of_printing_a_wrong_url():
    """Issue 34: `make lab` printed port 8888 while Jupyter, finding it taken, served on 8889. The target now
    checks the port first (the python -c line run here, as make runs it) and Jupyter may not move."""
    import socket
    import subprocess
    import sys

    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\nlab:", 1)[1].split("\n\n", 1)[0]
    check = next(line.strip().lstrip("@") for line in recipe.splitlines() if "connect_ex" in line)
    assert recipe.index("connect_ex") < recipe.index("pip install") < recipe.index("jupyter lab")
    assert "--ServerApp.port_retries=0" in recipe

    def run(port):
        command = check.replace("$(PY)", sys.executable).replace("$(LAB_PORT)", str(port)).replace("$$", "$")
        return subprocess.run(command, check=False, shell=True, capture_output=True, text=True, timeout=30)

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        taken = run(port)
    assert taken.returncode != 0 and taken.stdout == ""
    assert taken.stderr.count("\n") == 1 and f"port {port}" in taken.stderr and "LAB_PORT=" in taken.stderr
    assert run(port).returncode == 0  # free again
