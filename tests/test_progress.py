"""Long loops over images show progress readable on a terminal and in a log file."""

import io

import numpy as np

from vgg_tf.evaluation import classification
from vgg_tf.inference.protocol import ModelEvaluator
from vgg_tf.progress import Progress
from vgg_tf.weights.trained import TrainedModel

CONTROL_CHARACTERS = ("\r", "\b", "\x1b")


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_log_file_gets_a_plain_line_every_tenth_and_at_the_end():
    stream = io.StringIO()
    progress = Progress(25, stream=stream)
    for done in range(1, 24):
        progress.update(done, [("top1_err", done / 100)])
    progress.update(23, [("top1_err", 0.23)], final=True)  # the loop saw fewer than total
    lines = stream.getvalue().splitlines()
    assert [line.split(" ")[0] for line in lines] == [
        "3/25",
        "5/25",
        "8/25",
        "10/25",
        "13/25",
        "15/25",
        "18/25",
        "20/25",
        "23/25",
    ]
    assert lines[0].startswith("3/25 images (12%) - ") and lines[0].endswith("top1_err 0.0300")
    assert not any(c in stream.getvalue() for c in CONTROL_CHARACTERS)


def test_a_terminal_gets_keras_progress_bar():
    stream = _Terminal()
    progress = Progress(4, stream=stream)
    for done in range(1, 5):
        progress.update(done)
    assert "\r" in stream.getvalue() or "\b" in stream.getvalue()
    assert "4/4" in stream.getvalue()


def test_evaluation_into_a_file_shows_plain_progress(capsys, tiny_model):
    config = {"variant": "A", "crop_size": 32, "scale_min": 32, "scale_max": 32}
    evaluator = ModelEvaluator(TrainedModel(tiny_model(), config, "mem", "A"))
    rng = np.random.default_rng(0)
    images = [(rng.integers(0, 256, [32, 32, 3], dtype=np.uint8), i % 10) for i in range(10)]
    classification.evaluate_images([evaluator], images, ["single"], num_examples=10, verbose=1)
    out = capsys.readouterr().out
    assert "10/10 images (100%)" in out and "top1_err_single" in out
    assert not any(c in out for c in CONTROL_CHARACTERS)
