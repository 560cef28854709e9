"""What a backbone knows before any re-ID training: its frozen features ranked by nearest neighbour.

`frozen_probe` builds a config's backbone with a pretrained start (`model.pretrained=<file>`, the same code
path as ImageNet weights) or a random one, trains nothing, and runs the SYSU-MM01 protocol on its pooled
features: IR queries against RGB galleries by Euclidean distance, i.e. a 1-nearest-neighbour (k-NN) Rank-1
and the mAP of the same ranking. CSA is switched off (its gates are not part of any pretrained start; left
random they would only scramble the features), so the number is the backbone's own. A start that helps
fine-tuning should already rank people better than chance, and better than a random network does.

    python -m reid probe --data data/synthetic-v5 --pretrained results/pretrained/<weights>.safetensors
"""

from __future__ import annotations

from pathlib import Path

import torch

from reid.config import load_config
from reid.eval.evaluate import evaluate_sysu
from reid.models import build_model


def frozen_probe(data: str | Path, pretrained: str | None = None, config: str = "smoke", seed: int = 0,
                 trials: int = 10, overrides: tuple[str, ...] = ()) -> dict:
    """SYSU-MM01 all-search Rank-1 / mAP / mINP (mean over ``trials``) of ``config``'s frozen backbone, with
    the weights file ``pretrained`` or a random initialisation drawn with ``seed`` (``pretrained=None``)."""
    cfg = load_config(config, [*overrides, "model.csa=false", f"model.pretrained={pretrained or 'none'}"])
    torch.manual_seed(seed)
    model = build_model(cfg.model, num_classes=1, load_pretrained=pretrained is not None).eval()
    result = evaluate_sysu(model, Path(data) / "SYSU-MM01", "all", trials=trials)
    return {"start": str(pretrained) if pretrained else f"random (seed {seed})", "config": config,
            **{k: result[k] for k in ("rank1", "mAP", "mINP")}}


def probe_command(data: str | Path, pretrained: list[str], random_seeds: list[int], config: str = "smoke",
                  trials: int = 10, out: str | Path | None = None) -> list[dict]:
    """`python -m reid probe`: each start (weights files, then random initialisations) probed on ``data``;
    one line each, and with ``out`` a JSON of the rows with their provenance (command, commit, hardware)."""
    import json

    from reid.records.provenance import check_output_file, provenance
    from reid.utils.atomic import write_text_atomically
    from reid.utils.errors import UserError

    if not (Path(data) / "SYSU-MM01").is_dir():
        raise UserError(f"--data {data}: no SYSU-MM01/ folder in it (the probe runs the SYSU-MM01 protocol)")
    for path in pretrained:
        if not Path(path).is_file():
            raise UserError(f"--pretrained {path}: no such file")
    if not pretrained and not random_seeds:
        raise UserError("name at least one start: --pretrained FILE and/or --random-seeds 0-2")
    if out is not None:
        check_output_file(Path(out), "--out", (".json",))
    rows = []
    for start in [*pretrained, *[None] * len(random_seeds)]:
        seed = 0 if start is not None else random_seeds[len(rows) - len(pretrained)]
        row = frozen_probe(data, start, config, seed, trials)
        print(f"{row['start']}: all-search Rank-1 {row['rank1']:.2f}  mAP {row['mAP']:.2f}  mINP {row['mINP']:.2f}")
        rows.append(row)
    if out is not None:
        record = {"what": "frozen-backbone 1-NN on the SYSU-MM01 protocol (all-search, mean over trials), CSA off",
                  "data": str(data), "trials": trials, "rows": rows, "provenance": provenance()}
        write_text_atomically(Path(out), json.dumps(record, indent=2) + "\n", "--out")
    return rows
