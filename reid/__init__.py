"""reid: visible-infrared person re-identification with CrossViT, CSA fusion and an
adaptive-weight triplet loss (Huang et al., 2024), as a thin readable package.

    reid.data       readers for the real SYSU-MM01 / RegDB layouts, the synthetic dataset,
                    sampler and transforms
    reid.models     CrossViT backbone at 288x144, CSA fusion, BN-neck head, the ViT baseline
    reid.losses     label-smoothing CE (Eq. 13), hard / adaptive triplet (Eq. 14-15), center
    reid.metrics    CMC, mAP, mINP with the SYSU-MM01 / RegDB rules
    reid.evaluate   the SYSU-MM01 (gallery trials) and RegDB (splits) protocols
    reid.card       the protocol card every result carries; reid.compare sets cards side by side
    reid.tables     mean ± std tables (Markdown, LaTeX) beside results.csv
    reid.analysis   t-SNE map and intra / inter distance histograms of test embeddings
    reid.engine     the training loop (AMP, DDP, exact resume)
    reid.experiments  the runner: config -> cached run -> recorded result (with provenance)
    reid.sweep      a grid of rows x seeds x datasets x budgets as parallel jobs (submitit)
    reid.stats      seed statistics: differences paired by seed with t intervals
    reid.cli        `python -m reid synth|train|evaluate|reproduce|compare|analyse|search|embed|export|check-data|sweep`
    reid.install    is the `reid` Python imports this repository's? (pip name: crossvit-vireid)
"""

__version__ = "0.1.0"
