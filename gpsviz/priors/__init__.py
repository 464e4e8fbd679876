"""Prior embeddings: where GPS-SSL (and SPPS) look for an anchor's semantic neighbours.

A prior maps every training image to a vector *before* SSL training; Euclidean distance in that space should
reflect semantics. Each prior encodes a different piece of prior knowledge (see its docstring)::

    emb = compute_prior("hog", dataset)                 # N×D float32, cached under data/priors/
    purity(emb, dataset.labels, k=10)                    # share of the 10 nearest neighbours with the same class

Names: ``pixels``, ``pca``, ``hog``, ``hog-invariant``, ``autoencoder``, ``checkpoint``, ``shifted``, ``imagenet-resnet18``,
``imagenet-resnet50``, ``oracle``. Every result is cached under
``data_root(root)/priors/<dataset key>/<prior name>-<options hash>.pt`` (atomic write; an unreadable cache file
is recomputed).

Modules: :mod:`~gpsviz.priors.registry` (registry, cache keys, :func:`compute_prior`),
:mod:`~gpsviz.priors.simple` (pixels, PCA, HOG, oracle), :mod:`~gpsviz.priors.learned` (autoencoder, shifted
classifier: the priors that train a model first), :mod:`~gpsviz.priors.pretrained` (gpsviz checkpoints, ImageNet
weights). Feature extraction (:func:`embed_images`) lives in :mod:`gpsviz.features`, the purity measure in
:mod:`gpsviz.diagnostics`; both are re-exported here.
"""
from gpsviz.features import DEFAULT_MEAN as NORM_MEAN
from gpsviz.features import DEFAULT_STD as NORM_STD
from gpsviz.features import IMAGENET_MEAN, IMAGENET_STD, embed_images
from gpsviz.priors import simple  # noqa: F401,E402  (registers pixels, pca, hog, hog-invariant, oracle)
from gpsviz.priors.learned import ConvAutoencoder, shifted_model
from gpsviz.priors.pretrained import IMAGENET_WEIGHTS, imagenet_backbone, load_backbone_checkpoint
from gpsviz.priors.registry import (PRIORS, PriorSpec, available_priors, check_prior_options, compute_prior,
                                    dataset_key, prior_cache_path, prior_key, register_prior)
from gpsviz.purity import embedding_purity as purity

__all__ = [
    "PRIORS", "PriorSpec", "register_prior", "available_priors", "check_prior_options", "compute_prior", "prior_cache_path", "prior_key",
    "dataset_key", "purity", "embed_images", "NORM_MEAN", "NORM_STD", "IMAGENET_MEAN", "IMAGENET_STD",
    "ConvAutoencoder", "shifted_model", "IMAGENET_WEIGHTS", "imagenet_backbone", "load_backbone_checkpoint",
]
