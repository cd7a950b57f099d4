import torch

from genlab.clusters import cluster_prior, kmeans
from genlab.gans import ConvGAN, ConvGANConfig


def blobs(seed=0):
    """Three tight, well separated blobs of 50, 30 and 20 points in 5 dimensions."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[0.0] * 5, [10.0] * 5, [-10.0, 10.0, -10.0, 10.0, -10.0]])
    sizes = (50, 30, 20)
    x = torch.cat([c + 0.1 * torch.randn(n, 5, generator=g) for c, n in zip(centres, sizes)])
    truth = torch.cat([torch.full((n,), i) for i, n in enumerate(sizes)])
    return x, truth


def test_kmeans_recovers_separated_clusters_up_to_their_names_and_is_deterministic():
    x, truth = blobs()
    labels, centroids = kmeans(x, 3, seed=1)
    # the same partition: each true blob maps to exactly one cluster and vice versa
    pairs = set(zip(truth.tolist(), labels.tolist()))
    assert len(pairs) == 3 and len({c for _, c in pairs}) == 3
    assert torch.equal(labels, kmeans(x, 3, seed=1)[0])
    for t, c in pairs:
        assert torch.allclose(centroids[c], x[truth == t].mean(0), atol=1e-5)
    assert torch.allclose(cluster_prior(labels, 3).sort().values, torch.tensor([0.2, 0.3, 0.5]))


def test_a_self_conditioned_gan_samples_its_clusters_as_often_as_they_occur():
    model = ConvGAN(ConvGANConfig(width=8, noise=16, classes=3))
    model.label_prior = torch.tensor([0.0, 0.0, 1.0])      # only cluster 2 occurs
    seen = []
    model.generator.register_forward_hook(lambda m, args, out: seen.append(args[1]))
    model.sample(10, generator=torch.Generator().manual_seed(0))
    assert torch.equal(seen[-1], torch.full((10,), 2))
    assert len(seen) > 1 and all((s == 2).all() for s in seen)   # G's batch statistics come from cluster 2 too
    model.label_prior = None                                # a cGAN: every class in turn
    model.sample(6)
    assert seen[-1].tolist() == [0, 1, 2, 0, 1, 2]


def test_cluster_labels_are_kept_on_disk_and_read_back_by_a_new_process(monkeypatch):
    from genlab import clusters, gan_study

    first = gan_study.clusters("mnist", 300, 5)
    assert first.shape == (300,) and set(first.tolist()) <= set(range(5))

    def no_kmeans(*args, **kwargs):
        raise AssertionError("k-means ran again")
    clusters.cluster_labels.cache_clear()                 # a rebuild: nothing in memory
    monkeypatch.setattr(clusters, "kmeans", no_kmeans)
    assert torch.equal(gan_study.clusters("mnist", 300, 5), first)
    clusters.cluster_labels.cache_clear()
