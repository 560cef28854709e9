"""Keep committed notebook outputs small and deterministic (run by `make notebooks` after executing them).

Drops stderr streams (progress bars with timings, warnings), progress-bar widgets and their saved state
(ipywidgets), and per-cell execution timestamps; keeps stdout, tables and figures. Usage: python notebooks/clean_outputs.py notebooks/0*.ipynb
"""

import sys

import nbformat

for path in sys.argv[1:]:
    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs = [o for o in cell.outputs if o.get("name") != "stderr"
                        and "application/vnd.jupyter.widget-view+json" not in o.get("data", {})]
        cell.metadata.pop("execution", None)
    nbformat.write(nb, path)
