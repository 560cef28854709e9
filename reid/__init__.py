"""reid: visible-infrared person re-identification with CrossViT, CSA fusion and an
adaptive-weight triplet loss (Huang et al., 2024), as a thin readable package.

    reid/utils/    errors, atomic writes, checkpoints, RNG state (import nothing else of reid)
    reid/data/     SYSU-MM01 / RegDB readers, the synthetic set, sampler, transforms, TrainData
    reid/models/   CrossViT at 288x144, CSA fusion, BN-neck head, the ViT baseline
    reid/config.py, reid/losses.py    typed configs; Eq. 13-15
    reid/records/  provenance, protocol card, results tables, compare, seed statistics
    reid/eval/     metrics, re-ranking, the SYSU-MM01 / RegDB protocols
    reid/train/    the training loop
    reid/viz.py, reid/tools/   plots; search, ONNX export, embedding analysis, Grad-CAM
    reid/experiments.py        the runner; reid/reproduce.py, reid/sweep.py on top of it; reid/cli.py

Each folder imports only from the lines above it. One line per module: docs/architecture.md.
"""

__version__ = "0.1.0"
