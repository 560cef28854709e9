"""The model: CrossViT (or ViT baseline) backbone -> CSA -> pooling -> BN neck -> classifier."""

from reid.models.crossvit import PRESETS
from reid.models.reid_model import ModelConfig, ReIDModel, build_model

__all__ = ["PRESETS", "ModelConfig", "ReIDModel", "build_model"]
