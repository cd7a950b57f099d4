import torch
from torch import nn

from genlab import metrics


class Flatten(nn.Module):
    """Pixels as features: a stand-in extractor with a known feature space."""

    num_features = 16

    def features(self, x):
        return x.flatten(1)


def images(n=600, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 4, 4, generator=g) * 0.5 + 0.25


def test_fid_of_a_set_with_itself_is_zero():
    x = images()
    assert abs(metrics.fid(x, x, metrics.FeatureExtractor(Flatten()))) < 1e-3


def test_fid_grows_with_added_noise():
    x, ext = images(), metrics.FeatureExtractor(Flatten())
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(x.shape, generator=g)
    scores = [metrics.fid(x, x + s * noise, ext) for s in (0.0, 0.05, 0.1, 0.2)]
    assert scores == sorted(scores) and scores[1] > 1e-3
    assert scores[-1] > 4 * scores[1]


def test_fid_of_two_independent_draws_is_small_but_positive():
    ext = metrics.FeatureExtractor(Flatten())
    same_dist = metrics.fid(images(seed=0), images(seed=1), ext)
    shifted = metrics.fid(images(seed=0), images(seed=1) + 0.1, ext)
    assert 0 < same_dist < shifted
    assert abs(shifted - same_dist - 16 * 0.1 ** 2) < 0.05   # a mean shift adds |d mu|^2


def test_coverage_of_one_class_is_one_tenth_and_of_all_classes_one():
    assert metrics.class_coverage(torch.full((500,), 3), 10) == 0.1
    assert metrics.class_coverage(torch.arange(500) % 10, 10) == 1.0
    # two classes plus a trickle (1 %) of a third: the trickle does not count as covered
    pred = torch.cat([torch.zeros(495), torch.ones(495), torch.full((10,), 2)]).long()
    assert metrics.class_coverage(pred, 10) == 0.2


def test_histogram_sums_to_one():
    h = metrics.class_histogram(torch.tensor([0, 0, 1, 9]), 10)
    assert h.shape == (10,) and abs(h.sum().item() - 1) < 1e-6 and h[0] == 0.5


def test_yardstick_measures_real_images_like_the_classifier_does():
    ys = metrics.Yardstick("mnist", "smoke")
    x, y = ys.dataset.x_test[:500], ys.dataset.y_test[:500]
    report = ys.measure(x, y)
    # measure() runs the classifier once for FID and classes alike: the same numbers as its full forward pass
    ys.classifier.eval()
    with torch.no_grad():
        pred = ys.classifier(x).argmax(1)
    assert report.conditional_accuracy == (pred == y).float().mean().item()
    assert abs(report.fid - ys.fid(x)) < 1e-6
    assert report.conditional_accuracy > 0.5           # even the smoke classifier learns something
    assert report.coverage == 1.0
    # real images sit near the floor; one repeated image is far from it and covers one class
    assert report.fid < 3 * report.fid_floor + 1
    collapsed = ys.measure(x[:1].repeat(500, 1, 1, 1))
    assert collapsed.coverage == 0.1 and collapsed.fid > 5 * report.fid


def test_yardstick_keeps_its_reference_statistics_and_floors_beside_the_classifier(monkeypatch):
    first = metrics.Yardstick("mnist", "smoke")
    floor, fake = first.fid_floor, first.dataset.x_test[-300:]
    score = first.fid(fake)
    memo_files = sorted(p.name for p in first.fit_result.run_dir.glob("fid_*"))
    assert any(n.startswith("fid_reference_") for n in memo_files) and any(n.startswith("fid_floor_") for n in memo_files)

    # A second yardstick (a new kernel on a rebuild) reads them instead of recomputing them.
    def no_recompute(self, n_ref):
        raise AssertionError("reference statistics recomputed")
    monkeypatch.setattr(metrics.Yardstick, "_reference_stats", no_recompute)
    second = metrics.Yardstick("mnist", "smoke")
    assert second.fid_floor == floor and abs(second.fid(fake) - score) < 1e-6
