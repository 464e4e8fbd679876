"""gpsviz: a Jupyter-first toolkit for studying how self-supervised learning chooses its positives.

A method is a *recipe*: one choice per ingredient (positive source, augmentation, head, objective,
view weighting). See ``docs/interfaces.md`` for the contracts between ingredients.
"""

__version__ = "0.1.0"
