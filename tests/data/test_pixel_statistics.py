"""vgg_tf.data.pixel_statistics: a split's mean RGB and PCA lighting constants."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

from vgg_tf.data import pixel_statistics, sources

SKIPPED = re.compile(r"skipped a bad record .* \((\d+) so far\): (\S+)")


def _skipped(log):
    """(count, file name) of each skipped-record line of a log."""
    return [(int(n), os.path.basename(path)) for n, path in SKIPPED.findall(log)]


def test_mean_and_pca_lighting_of_a_two_colour_folder(tmp_path, encode):
    for label, colour in {"red": (255, 0, 0), "grey": (100, 100, 100)}.items():
        os.makedirs(tmp_path / label)
        for i in range(3):
            (tmp_path / label / f"{i}.png").write_bytes(
                encode(np.full((20, 30, 3), colour, np.uint8), "PNG")
            )
    source = sources.get_source(str(tmp_path))
    assert source.class_names == ("grey", "red") and source.num_classes == 2
    mean = pixel_statistics.compute_mean_rgb(source, split="train")
    np.testing.assert_allclose(mean, (177.5, 50.0, 50.0), atol=1e-6)
    eigval, eigvec = pixel_statistics.compute_pca_lighting(source, split="train")
    assert eigval[0] >= eigval[1] >= eigval[2] >= 0
    np.testing.assert_allclose(np.asarray(eigvec).T @ np.asarray(eigvec), np.eye(3), atol=1e-6)
    # Two colours, half the pixels each: all the variance lies along their difference.
    difference = np.array([255.0, 0, 0]) - 100.0
    np.testing.assert_allclose(
        np.abs(np.asarray(eigvec)[:, 0]), np.abs(difference) / np.linalg.norm(difference), atol=1e-6
    )
    half = np.linalg.norm(difference) / 2 / 255  # standard deviation along it, pixels in [0, 1]
    assert eigval[0] == pytest.approx(255 * half**2) and eigval[1] == pytest.approx(0, abs=1e-6)


def test_bad_and_oversized_records_are_skipped_and_named(tmp_path, encode, zero_png, capfd):
    os.makedirs(tmp_path / "c")
    for i, colour in enumerate(((200, 100, 0), (0, 100, 200))):
        (tmp_path / "c" / f"{i}.png").write_bytes(
            encode(np.full((10, 10, 3), colour, np.uint8), "PNG")
        )
    (tmp_path / "c" / "garbage.jpg").write_bytes(b"no image")
    (tmp_path / "c" / "zeros.png").write_bytes(zero_png(3000, 2000))  # 6 MP, valid
    source = sources.get_source(str(tmp_path))
    capfd.readouterr()
    # Over max_pixels the big black image is skipped as a bad record: it does not weigh in.
    mean = pixel_statistics.compute_mean_rgb(source, split="train", max_pixels=1_000_000)
    np.testing.assert_allclose(mean, (100.0, 100.0, 100.0), atol=1e-6)
    assert {name for _, name in _skipped(capfd.readouterr().err)} == {"garbage.jpg", "zeros.png"}
    # Within the limits it counts, pixel for pixel.
    mean = pixel_statistics.compute_mean_rgb(source, split="train")
    np.testing.assert_allclose(mean, np.asarray((100.0, 100.0, 100.0)) * 200 / 6_000_200, rtol=1e-6)
    assert [name for _, name in _skipped(capfd.readouterr().err)] == ["garbage.jpg"]
    eigval, _ = pixel_statistics.compute_pca_lighting(source, split="train", max_pixels=1_000_000)
    assert eigval[0] > 0
