"""Interactive explorers for notebooks (ipywidgets 8), one per file.

* :class:`NeighbourExplorer` -- an anchor and its nearest neighbours in each prior space (GPS-SSL positives).
* :class:`AugmentExplorer` -- an image beside its augmented views and their parameters.
* :class:`SetExplorer` -- an anchor's SPPS semantic set for any threshold and k, its purity, the set sizes.
* :class:`SensitivityExplorer` -- a baseline's and a CASSLE backbone's similarity of augmented views to the clean image.
* :class:`EmbeddingExplorer` -- two runs' embeddings as linked 2-D maps; a point's neighbours, positives and views.

Each writes a machine-readable status marker after every redraw (``explorer-state: ... done``,
``augment-state: ... done``) that the browser tests wait for: visually hidden, but in the page's text. Figures are
drawn to be shown at their nominal size (every text at least 9 pt on screen; see
:func:`gpsviz.widgets.controls.show_figure`), and displaying an explorer shows a one-line hint above it (re-run the
cell when a reopened notebook has lost the widget).
"""
from gpsviz.widgets.augment_explorer import AugmentExplorer
from gpsviz.widgets.neighbour_explorer import NeighbourExplorer
from gpsviz.widgets.sensitivity_explorer import SensitivityExplorer
from gpsviz.widgets.set_explorer import SetExplorer

__all__ = ["AugmentExplorer", "NeighbourExplorer", "SetExplorer", "SensitivityExplorer"]
from gpsviz.widgets.probe_explorer import ProbeExplorer  # noqa: E402  (Dubois et al.'s probe conditions)

__all__ += ["ProbeExplorer"]  # probe_explorer
from gpsviz.widgets.ood_explorer import OODExplorer  # noqa: E402  (UOTA: views ranked by weight vs coverage)

__all__ += ["OODExplorer"]  # ood_explorer
from gpsviz.widgets.embedding_explorer import EmbeddingExplorer  # noqa: E402  (2-D maps of two runs, linked)

__all__ += ["EmbeddingExplorer"]  # embedding_explorer
