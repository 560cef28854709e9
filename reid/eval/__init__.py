"""Evaluation: the metrics (CMC, mAP, mINP), k-reciprocal re-ranking and the SYSU-MM01 / RegDB protocols."""
