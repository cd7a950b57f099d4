"""The one batched-inference helper: same answer as one big call, whatever the batch size."""
import pytest
import torch

from genlab.batched import batches, map_batches


def test_map_batches_matches_one_call_and_keeps_the_last_partial_batch():
    x = torch.arange(23, dtype=torch.float32).view(23, 1)
    seen = []

    def double(t):
        seen.append(len(t))
        return 2 * t

    out = map_batches(double, x, size=5)
    assert torch.equal(out, 2 * x)
    assert seen == [5, 5, 5, 5, 3]


def test_aligned_inputs_are_sliced_together():
    x, y = torch.arange(7), torch.arange(7) * 10
    out = map_batches(lambda a, b: a + b, x, y, size=3)
    assert torch.equal(out, x + y)
    assert [tuple(map(len, p)) for p in batches(x, y, size=3)] == [(3, 3), (3, 3), (1, 1)]
    with pytest.raises(ValueError, match="one length"):
        list(batches(x, y[:5], size=3))
    with pytest.raises(ValueError, match=">= 1"):
        list(batches(x, size=0))


def test_map_batches_builds_no_graph_and_returns_cpu_tensors():
    w = torch.ones(1, requires_grad=True)
    out = map_batches(lambda t: t * w, torch.ones(4), size=2)
    assert not out.requires_grad and out.device.type == "cpu"
