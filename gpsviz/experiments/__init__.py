"""Reproductions with their own runner (``python -m gpsviz reproduce <name>``), one module per paper.

Each module calls :func:`gpsviz.reproduce.register_experiment` at import; this package imports them all, so the
command line and :func:`gpsviz.reproduce.reproduce` know every experiment. A module builds on the shared grid
machinery of :mod:`gpsviz.reproduce` (``Cell``, ``run_cell``, ``floor_rows``, ``summarise``, ``format_table``).
"""
from gpsviz.experiments import spps  # noqa: E402,F401  (SPPS: reproduce spps)
from gpsviz.experiments import cassle  # noqa: E402,F401  (CASSLE: reproduce cassle)
from gpsviz.experiments import dubois  # noqa: E402,F401  (Dubois et al.: reproduce dubois)
from gpsviz.experiments import uota  # noqa: E402,F401  (UOTA: reproduce uota)
