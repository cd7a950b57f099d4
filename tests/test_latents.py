"""Latent interpolation: rows start and end at the two images' latents and move linearly between."""
import torch

from genlab.latents import interpolate


def test_interpolation_rows_run_linearly_from_a_to_b():
    a, b = torch.zeros(2, 3), torch.tensor([[4.0, 8.0, 12.0], [1.0, 1.0, 1.0]])
    rows = interpolate(lambda x: 2 * x, lambda z: z / 2, a, b, steps=5).view(2, 5, 3)
    assert torch.allclose(rows[:, 0], a) and torch.allclose(rows[:, -1], b)
    assert torch.allclose(rows[0, 1], b[0] / 4) and torch.allclose(rows[1, 2], b[1] / 2)
