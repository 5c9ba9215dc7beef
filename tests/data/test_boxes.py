"""Box geometry for localisation: parameterisation, IoU, greedy merging, windows, hits."""

import numpy as np
import pytest
import tensorflow as tf

from vgg_tf.data import boxes


def _random_boxes(rng, shape):
    corners = rng.uniform(-50, 150, size=(*shape, 2, 2))
    low, high = corners.min(axis=-2), corners.max(axis=-2) + 1.0  # (y, x) each
    return np.concatenate([low, high], axis=-1).astype(np.float32)


def test_encode_decode_round_trip():
    rng = np.random.default_rng(0)
    box, window = _random_boxes(rng, (3, 5)), _random_boxes(rng, (1, 5))  # broadcast windows
    params = boxes.encode(box, window)
    assert params.shape == (3, 5, 4)
    np.testing.assert_allclose(boxes.decode(params, window), box, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(
        boxes.encode(boxes.decode(params, window), window), params, rtol=1e-5, atol=1e-5
    )


def test_encode_by_hand():
    # Window 100 high from y=20, 200 wide from x=10; box centre (x=60, y=45), 40 x 10.
    params = boxes.encode([40.0, 40.0, 50.0, 80.0], [20.0, 10.0, 120.0, 210.0])
    np.testing.assert_allclose(params, [50 / 200, 25 / 100, 40 / 200, 10 / 100], rtol=1e-6)
    # Not clipped: a box past the window's corner.
    outside = boxes.encode([-10.0, -10.0, 30.0, 30.0], [0.0, 0.0, 10.0, 10.0])
    np.testing.assert_allclose(outside, [1.0, 1.0, 4.0, 4.0])


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match=r"boxes must have a last axis of size 4.*\(2, 3\)"):
        boxes.encode(np.zeros((2, 3)), [0.0, 0.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"a must have rank 2"):
        boxes.iou([0.0, 0.0, 1.0, 1.0], [[0.0, 0.0, 1.0, 1.0]])
    with pytest.raises(ValueError, match=r"threshold must be a number in \[0, 1\]; got 1.5"):
        boxes.greedy_merge([[0.0, 0.0, 1.0, 1.0]], [1.0], threshold=1.5, criterion="iou")
    with pytest.raises(ValueError, match=r"threshold must be a match score >= 0 .*; got -1"):
        boxes.greedy_merge([[0.0, 0.0, 1.0, 1.0]], [1.0], threshold=-1)
    with pytest.raises(ValueError, match=r"criterion='nms' is not accepted; expected one of"):
        boxes.greedy_merge([[0.0, 0.0, 1.0, 1.0]], [1.0], criterion="nms")
    with pytest.raises(ValueError, match=r"stride must be an integer >= 1; got 0"):
        boxes.window_grid(2, 2, 224, stride=0)


def test_iou_by_hand():
    a = [[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 1.0, 3.0]]  # the second has zero area
    b = [
        [0.0, 0.0, 2.0, 2.0],  # identical
        [0.0, 1.0, 2.0, 3.0],  # half overlapping: 2 / (4 + 4 - 2)
        [0.5, 0.5, 1.5, 1.5],  # contained: 1 / 4
        [3.0, 3.0, 4.0, 4.0],  # disjoint
        [2.0, 0.0, 3.0, 2.0],  # touching edge
        [1.0, 1.0, 1.0, 3.0],
    ]  # the zero-area box itself
    expected = [[1.0, 1 / 3, 0.25, 0.0, 0.0, 0.0], [0.0] * 6]
    result = boxes.iou(a, b)
    assert result.shape == (2, 6)
    np.testing.assert_allclose(result, expected, rtol=1e-6)
    assert not np.isnan(result).any()
    assert boxes.iou(np.zeros((0, 4)), b).shape == (0, 6)


def test_match_score_by_hand():
    square = [0.0, 0.0, 2.0, 2.0]  # diagonal 2 sqrt(2), area 4
    others = [
        square,  # identical: 0
        [0.0, 1.0, 2.0, 3.0],  # sideways by half: 1 / (2 sqrt 2) + (1 - 2 / 4)
        [1.0, 1.0, 3.0, 3.0],  # diagonally by half: sqrt 2 / (2 sqrt 2) + (1 - 1 / 4)
        [0.5, 0.5, 1.5, 1.5],  # inside, centred: 0 + (1 - 1 / 1)
        [0.0, 0.0, 1.0, 1.0],  # inside, in a corner: sqrt(0.5) / (1.5 sqrt 2) + 0
        [0.0, 3.0, 2.0, 5.0],  # apart: 3 / (2 sqrt 2) + 1
    ]
    expected = [
        0.0,
        1 / (2 * 2**0.5) + 0.5,
        0.5 + 0.75,
        0.0,
        0.5**0.5 / (1.5 * 2**0.5),
        3 / 8**0.5 + 1,
    ]
    result = boxes.match_score([square], others).numpy()
    assert result.shape == (1, 6)
    np.testing.assert_allclose(result[0], expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(
        boxes.match_score(others, [square]).numpy()[:, 0], expected, rtol=1e-6
    )
    points = [[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0], [2.0, 2.0, 2.0, 2.0]]
    np.testing.assert_array_equal(
        boxes.match_score(points[:1], points).numpy(), [[1.0, 1.0, np.inf]]
    )


def test_greedy_merge_by_overfeats_match_score_or_by_iou():
    # a and its centred inner box c match perfectly (score 0) though their IoU is 0.36;
    # b is a shifted by 1 (score 0.17, IoU 0.82).
    a, b, c = [0.0, 0.0, 10.0, 10.0], [0.0, 1.0, 10.0, 11.0], [2.0, 2.0, 8.0, 8.0]
    # OverFeat: a + c first, then their mean [1, 1, 9, 9] and b (score 0.08): one box.
    merged, scores, count = boxes.greedy_merge([a, b, c], [1.0, 2.0, 4.0])
    assert int(count) == 1
    np.testing.assert_allclose(merged[0], [2 / 3, 1.0, 28 / 3, 29 / 3], rtol=1e-6)
    np.testing.assert_allclose(scores, [7.0, 0.0, 0.0])
    # A threshold below a + c's mean against b (0.0786) stops after the first merge.
    merged, scores, count = boxes.greedy_merge([a, b, c], [1.0, 2.0, 4.0], threshold=0.05)
    assert int(count) == 2
    np.testing.assert_allclose(merged[:2], [[1.0, 1.0, 9.0, 9.0], b])
    np.testing.assert_allclose(scores, [5.0, 2.0, 0.0])
    # IoU: a + b first (0.82), then their mean against c has IoU 0.36 < 0.5: two boxes.
    merged, scores, count = boxes.greedy_merge([a, b, c], [1.0, 2.0, 4.0], criterion="iou")
    assert int(count) == 2
    np.testing.assert_allclose(merged[:2], [c, [0.0, 0.5, 10.0, 10.5]])
    np.testing.assert_allclose(scores, [4.0, 3.0, 0.0])
    # Boxes that do not overlap never merge at the default threshold.
    _, _, count = boxes.greedy_merge([a, [0.0, 10.0, 10.0, 20.0]], [1.0, 1.0])
    assert int(count) == 2


def test_greedy_merge_merges_the_close_pair_and_keeps_the_far_one():
    near_a, near_b, far = [0.0, 0.0, 10.0, 10.0], [1.0, 0.0, 11.0, 10.0], [40.0, 40.0, 50.0, 50.0]
    merged, scores, count = boxes.greedy_merge([near_a, far, near_b], [0.25, 0.5, 0.5])
    assert int(count) == 2
    np.testing.assert_allclose(scores, [0.75, 0.5, 0.0])  # confidence sum first
    np.testing.assert_allclose(merged, [[0.5, 0.0, 10.5, 10.0], far, [0.0] * 4])


def test_greedy_merge_chains_with_the_mean_of_all_members():
    chain = [[0.0, 0.0, 10.0, 10.0], [0.0, 1.0, 10.0, 11.0], [0.0, 2.0, 10.0, 12.0]]
    merged, scores, count = boxes.greedy_merge(chain, [1.0, 2.0, 4.0])
    assert int(count) == 1
    np.testing.assert_allclose(merged[0], [0.0, 1.0, 10.0, 11.0])  # not the mean of two means
    np.testing.assert_allclose(scores, [7.0, 0.0, 0.0])
    # Far apart: nothing merges; sorted by score.
    _, scores, count = boxes.greedy_merge(chain, [1.0, 2.0, 4.0], threshold=0.9, criterion="iou")
    assert int(count) == 3 and scores.numpy().tolist() == [4.0, 2.0, 1.0]


def test_greedy_merge_of_none_and_one():
    merged, scores, count = boxes.greedy_merge(np.zeros((0, 4)), np.zeros((0,)))
    assert merged.shape == (0, 4) and scores.shape == (0,) and int(count) == 0
    merged, scores, count = boxes.greedy_merge([[1.0, 2.0, 3.0, 4.0]], [0.5])
    assert int(count) == 1
    assert merged.numpy().tolist() == [[1.0, 2.0, 3.0, 4.0]] and scores.numpy().tolist() == [0.5]


def test_greedy_merge_in_a_graph_of_unknown_length():
    @tf.function(
        input_signature=[tf.TensorSpec([None, 4], tf.float32), tf.TensorSpec([None], tf.float32)]
    )
    def merge(b, s):
        return boxes.greedy_merge(b, s, threshold=0.5)

    merged, scores, count = merge(
        tf.constant([[0.0, 0.0, 10.0, 10.0], [1.0, 0.0, 11.0, 10.0], [40.0, 40.0, 50.0, 50.0]]),
        tf.constant([0.25, 0.5, 0.5]),
    )
    assert int(count) == 2
    np.testing.assert_allclose(merged[0], [0.5, 0.0, 10.5, 10.0])
    np.testing.assert_allclose(scores, [0.75, 0.5, 0.0])
    _, _, count = merge(tf.zeros([0, 4]), tf.zeros([0]))
    assert int(count) == 0


def test_window_grid():
    windows = boxes.window_grid(2, 3, crop_size=64)
    assert windows.shape == (6, 4)
    np.testing.assert_array_equal(windows[1], [0, 32, 64, 96])  # row-major: (0, 1)
    np.testing.assert_array_equal(windows[3], [32, 0, 96, 64])  # (1, 0)
    np.testing.assert_array_equal(windows[5], [32, 64, 96, 128])
    dynamic = tf.function(lambda h, w: boxes.window_grid(h, w, 224, stride=16))
    np.testing.assert_array_equal(
        dynamic(tf.constant(1), tf.constant(2)), [[0, 0, 224, 224], [0, 16, 224, 240]]
    )


def test_localisation_hits():
    truth = [[0.0, 0.0, 10.0, 10.0], [50.0, 50.0, 60.0, 60.0]]
    half = [0.0, 0.0, 10.0, 5.0]  # IoU 0.5 exactly with the first box
    assert not bool(boxes.localisation_hits([4], [half], 4, truth))  # must be > 0.5
    assert not bool(boxes.localisation_hits([3], [truth[0]], 4, truth))  # wrong class
    top5 = [7, 4, 1, 2, 3]
    predicted = [truth[1], [49.0, 50.0, 60.0, 60.0], truth[0], truth[0], truth[0]]
    assert bool(boxes.localisation_hits(top5, predicted, 4, truth))  # the second matches box 2
    assert not bool(boxes.localisation_hits(top5, predicted, 4, np.zeros((0, 4))))
