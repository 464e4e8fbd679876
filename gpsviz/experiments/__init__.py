"""Every reproduction of ``python -m gpsviz reproduce <name>``: the framework (:mod:`gpsviz.experiments.grid`),
the project's own grids and the demo (:mod:`gpsviz.experiments.baselines`), and one module per paper.

Each module registers its experiments with :func:`gpsviz.experiments.grid.register_experiment` at import; this
package imports them all (the grids first), so the command line and :func:`gpsviz.reproduce.reproduce` know every
experiment.
"""
from gpsviz.experiments import (
    baselines,  # noqa: F401  (baselines, gps, gps-priors, precision; demo)
    cassle,  # noqa: F401  (CASSLE: reproduce cassle)
    dubois,  # noqa: F401  (Dubois et al.: reproduce dubois)
    spps,  # noqa: F401  (SPPS: reproduce spps)
    uota,  # noqa: F401  (UOTA: reproduce uota)
)
