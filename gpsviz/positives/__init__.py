"""Positive sources: which image is an anchor's partner and which views are positives (group ids)."""
from gpsviz.positives.base import (LabelPositives, Positives, PositiveSource, SelfPositives, ViewPlan,
                                   available_positives, build_positives, merge_groups, pair_group_ids,
                                   register_positives)
from gpsviz.positives.neighbours import NeighbourPositives
from gpsviz.positives.semantic import SemanticSetPositives

__all__ = [
    "NeighbourPositives",
    "SemanticSetPositives",
    "LabelPositives",
    "Positives",
    "PositiveSource",
    "SelfPositives",
    "ViewPlan",
    "available_positives",
    "build_positives",
    "merge_groups",
    "pair_group_ids",
    "register_positives",
]
