"""`make reproduce`: the main job of the repository.

For now: make the default synthetic dataset (if missing) and print its summary.
Training, evaluation, tables and figures are added by the training issue.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_SYNTHETIC_ROOT = Path("data/synthetic")


def add_arguments(parser) -> None:
    parser.add_argument("--profile", default="smoke", help="training profile (config name)")
    parser.add_argument("--data", default=None, help="root of a real SYSU-MM01 or RegDB copy")
    parser.add_argument("--dataset", default=None, choices=["sysu", "regdb"], help="which dataset --data is")
    parser.add_argument("--synthetic-root", default=str(DEFAULT_SYNTHETIC_ROOT))


def run(args) -> int:
    from reid.data.synthetic import ensure_synthetic, summarize

    root = ensure_synthetic(Path(args.synthetic_root), seed=0)
    print(summarize(root))
    return 0
