"""Heatmaps (vgg_tf.inference.heatmaps): the score map placed at its windows' centres, the image
at its own size; bin/predict's and bin/evaluate's heatmaps go through them (tests/serving/test_predict.py,
tests/inference/test_protocol.py)."""

import numpy as np
import pytest
from PIL import Image

from vgg_tf.inference import heatmaps


def test_score_map_locations_sit_at_the_centres_of_their_windows():
    # A 96 x 160 image at Q = 96 with crop 32: a 3 x 5 map, windows 32 apart.
    score_map = np.arange(15, dtype=float).reshape(3, 5)
    up = heatmaps.upsample_score_map(score_map, 96, 160, 96, 32)
    assert up.shape == (96, 160)
    # Window (i, j) covers pixels [32 i, 32 i + 32): its centre lies between pixels
    # 32 i + 15 and 32 i + 16, where the interpolation is the map's value.
    for i in (1,):
        for j in (1, 2, 3):
            centre = up[32 * i + 15 : 32 * i + 17, 32 * j + 15 : 32 * j + 17].mean()
            assert centre == pytest.approx(score_map[i, j])
    # Held beyond the outermost centres: the corner windows' outer quarters are flat.
    assert (up[:16, :16] == 0).all() and (up[-16:, -16:] == 14).all()
    # A photo twice that size (rescaled to the same 96 x 160): the centres move with it.
    large = heatmaps.upsample_score_map(score_map, 192, 320, 96, 32)
    assert large[95:97, 159:161].mean() == pytest.approx(score_map[1, 2])


def test_the_written_heatmap_is_the_blend_at_the_images_size(tmp_path):
    image = np.full([20, 30, 3], 200, np.uint8)
    values = np.linspace(0, 1, 600).reshape(20, 30)
    heatmaps.write_png(heatmaps.heatmap_image(image, values), tmp_path / "a" / "map.png")
    written = np.asarray(Image.open(tmp_path / "a" / "map.png").convert("RGB"))
    assert written.shape == (20, 30, 3)
    # Blue (jet's 0) at the first pixel, red (jet's 1) at the last, the image showing through.
    first, last = written[0, 0].astype(int), written[-1, -1].astype(int)
    assert first[2] > first[0] and last[0] > last[2]
    assert (written[0, 0] == np.round(0.55 * 200 + 0.45 * 255 * np.array([0, 0, 0.5]))).all()
