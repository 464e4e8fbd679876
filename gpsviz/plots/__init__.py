"""matplotlib figure functions shared by the notebooks and the reproduce command (one module per topic)."""
from gpsviz.plots.augment import plot_views
from gpsviz.plots.data import plot_image_grid, to_display
from gpsviz.plots.dubois import (plot_accuracy_sweep, plot_condition_bars, plot_conditions_vs_accuracy,
                                 plot_label_efficiency, plot_simplex, plot_spectra)
from gpsviz.plots.embedding import EmbeddingMap, Tile, TileRow, plot_embedding_explorer
from gpsviz.plots.neighbours import (plot_ball_sizes, plot_distance_histogram, plot_neighbours, plot_purity_curves,
                                     plot_purity_vs_accuracy)
from gpsviz.plots.spps import plot_gps_vs_spps, plot_purity_size, plot_semantic_set, plot_set_sizes
from gpsviz.plots.training import (embed_2d, factor_colours, plot_embedding, plot_learning_curves, plot_results_bars,
                                   plot_run_embedding)
from gpsviz.plots.uota import plot_auroc_over_training, plot_ranked_views, plot_weight_histogram

__all__ = ["plot_views", "plot_image_grid", "to_display", "plot_neighbours", "plot_distance_histogram",
           "plot_purity_curves", "plot_ball_sizes", "plot_purity_vs_accuracy", "embed_2d", "factor_colours",
           "plot_embedding", "plot_learning_curves", "plot_results_bars", "plot_run_embedding", "plot_gps_vs_spps",
           "plot_purity_size", "plot_semantic_set", "plot_set_sizes",
           # Dubois et al.
           "plot_simplex", "plot_label_efficiency", "plot_accuracy_sweep", "plot_conditions_vs_accuracy",
           "plot_condition_bars", "plot_spectra",
           # UOTA
           "plot_ranked_views", "plot_weight_histogram", "plot_auroc_over_training",
           # the embedding explorer
           "plot_embedding_explorer", "EmbeddingMap", "Tile", "TileRow"]
