"""How long the default synthetic set takes to generate, per generator version and number of rendering
processes; seconds printed (nothing asserted). Issue 31's target: the default set within 60 s on 2 cores.

    python benchmarks/bench_synth.py                  # versions 4 and 5, 1 and 2 workers
    python benchmarks/bench_synth.py --versions 5 --workers 2

Each generation writes into a fresh temporary folder. Run it on a quiet machine: anything else on the cores
changes every figure.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reid.data.synthetic import Sizes, make_synthetic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", default="4,5")
    parser.add_argument("--workers", default="1,2")
    args = parser.parse_args()
    for version in (int(v) for v in args.versions.split(",")):
        sizes = Sizes.preset(version=version)
        for workers in (int(w) for w in args.workers.split(",")):
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                root = make_synthetic(Path(tmp) / "s", seed=0, version=version, workers=workers)
                seconds = time.perf_counter() - start
                images = sum(1 for p in root.rglob("*") if p.suffix in (".jpg", ".bmp"))
            print(f"version {version}, {workers} worker(s): {images} images ({sizes.sysu_test_ids} SYSU test ids) "
                  f"in {seconds:.1f} s ({1000 * seconds / images:.1f} ms an image)")


if __name__ == "__main__":
    main()
