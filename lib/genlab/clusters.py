"""Self-conditioning: k-means clusters of the training images stand in for labels.

An unconditional GAN must discover on its own that the data has modes; a conditional one is
told. Self-conditioned GANs (Liu et al. 2020) give an unconditional model the same head start
without any human label: cluster the training images, train the conditional machinery on the
cluster ids, and sample with cluster ids drawn as often as the clusters occur in the data.
Here the clusters are plain k-means on pixels (no classifier is involved: the classifier is
the yardstick that measures the samples, and must stay independent of them).
"""
from __future__ import annotations

import functools

import torch

from genlab import data as gdata


def kmeans(x: torch.Tensor, k: int, iters: int = 25, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means on the rows of x (N x D float). Returns (cluster id per row, centroids).
    Deterministic: seeded initial centroids (k distinct rows) and a fixed number of iterations;
    a cluster that empties keeps its previous centroid."""
    g = torch.Generator().manual_seed(seed)
    centroids = x[torch.randperm(len(x), generator=g)[:k]].clone()
    for _ in range(iters):
        assign = torch.cdist(x, centroids).argmin(1)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None]
    return torch.cdist(x, centroids).argmin(1), centroids


@functools.lru_cache(maxsize=8)
def cluster_labels(dataset: str, n: int, k: int, seed: int = 0) -> torch.Tensor:
    """Cluster id of each of the first n training images of `dataset` (k-means on pixels in [0, 1])."""
    ds = gdata.load(dataset)
    labels, _ = kmeans(gdata.to_float(ds.x_train[:n]).flatten(1), k, seed=seed)
    return labels


def cluster_prior(labels: torch.Tensor, k: int) -> torch.Tensor:
    """How often each cluster occurs: the distribution to draw sampling labels from."""
    counts = torch.bincount(labels, minlength=k).float()
    return counts / counts.sum()
