"""Objectives (per-view losses) and view weightings: pure loss functions plus the registered ingredients."""
from gpsviz.objectives.base import (OBJECTIVES, WEIGHTINGS, Objective, Weighting, build_objective, build_weighting,
                                    register_objective, register_weighting)
from gpsviz.objectives.byol import BYOLObjective, byol_loss, byol_momentum, ema_update
from gpsviz.objectives.contrastive import NTXentObjective, multi_positive_ntxent, nt_xent, positive_mask
from gpsviz.objectives.dubois import CISSLObjective, DISSLObjective, cissl_loss, dissl_loss
from gpsviz.objectives.swav import SwAVObjective, sinkhorn, swav_loss
from gpsviz.objectives.uota import UOTAWeighting, uota_distances, uota_scores

__all__ = [
    "OBJECTIVES", "WEIGHTINGS", "Objective", "Weighting", "build_objective", "build_weighting",
    "register_objective", "register_weighting", "BYOLObjective", "NTXentObjective",
    "CISSLObjective", "DISSLObjective", "SwAVObjective", "sinkhorn", "UOTAWeighting", "uota_scores", "uota_distances", "byol_loss", "byol_momentum", "ema_update", "multi_positive_ntxent", "nt_xent", "positive_mask",
    "swav_loss", "cissl_loss", "dissl_loss",
]
