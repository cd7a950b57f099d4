import torch

from genlab.attributes import attributes


def bar(width=3, length=16, shear=0.0, size=28):
    """A vertical stroke of `width` pixels, its top shifted right by shear * height."""
    img = torch.zeros(1, 1, size, size)
    top = (size - length) // 2
    for r in range(top, top + length):
        offset = round(shear * (top + length - 1 - r))
        c0 = size // 2 - width // 2 + offset - round(shear * length / 2)
        img[0, 0, r, c0:c0 + width] = 1.0
    return img


def test_upright_bar_has_no_slant_and_its_size():
    a = attributes(bar(width=3, length=16)).iloc[0]
    assert abs(a.slant) < 1e-6
    assert a.width == 3 and a.height == 16
    assert abs(a.thickness - 3) < 0.6


def test_slant_follows_the_shear_and_its_sign():
    right = attributes(bar(shear=0.5)).iloc[0].slant
    left = attributes(bar(shear=-0.5)).iloc[0].slant
    assert abs(right - 0.5) < 0.08 and abs(left + 0.5) < 0.08


def test_thickness_and_ink_grow_with_stroke_width():
    a = attributes(torch.cat([bar(width=w) for w in (2, 4, 6)]))
    assert list(a.thickness) == sorted(a.thickness) and a.thickness.iloc[2] > 2 * a.thickness.iloc[0]
    assert list(a.ink) == sorted(a.ink)


def test_uint8_and_float_agree_and_empty_image_is_safe():
    img = bar()
    a = attributes((img * 255).to(torch.uint8)).iloc[0]
    b = attributes(img).iloc[0]
    assert abs(a.slant - b.slant) < 1e-6 and a.width == b.width
    empty = attributes(torch.zeros(1, 1, 28, 28)).iloc[0]
    assert empty.width == 0 and empty.ink == 0
