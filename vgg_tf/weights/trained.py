"""A model with what its training decided: crop size, mean RGB, test scales, class names.

Example:
    >>> trained = TrainedModel(None, {"scale_min": 256, "scale_max": 512, "crop_size": 224},
    ...                        "model.keras", "D (run)")
    >>> trained.mean_rgb, trained.multi_scales()
    ((123.68, 116.779, 103.939), (256, 384, 512))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import keras

from vgg_tf import workdir as workdir_lib
from vgg_tf.data.constants import IMAGENET_MEAN_RGB
from vgg_tf.nets import builder


def recorded_mean_rgb(config: Mapping) -> tuple[float, float, float]:
    """The mean RGB a model was trained with: recorded in its config, else ImageNet's.

    Example:
        >>> recorded_mean_rgb({})
        (123.68, 116.779, 103.939)
    """
    mean = config.get("mean_rgb")
    return tuple(float(m) for m in (IMAGENET_MEAN_RGB if mean is None else mean))


@dataclasses.dataclass(frozen=True)
class TrainedModel:
    """A classifier and what evaluation, export and fine-tuning need from its training.

    Attributes:
        model: The Keras classifier as saved by the trainer (``model.keras``).
        config: The training config (``config.json``), or ``{}`` when absent.
        path: Where the model was read from.
        name: A short label for tables: ``"<variant> (<directory name>)"``.
    """

    model: keras.Model
    config: dict
    path: str
    name: str

    @property
    def crop_size(self) -> int:
        return int(self.config.get("crop_size") or builder.crop_size_of(self.model))

    @property
    def num_classes(self) -> int:
        return int(self.model.get_layer("fc8").units)

    @property
    def class_names(self) -> tuple[str, ...] | None:
        names = self.config.get("class_names")
        return tuple(str(n) for n in names) if names else None

    @property
    def flip(self) -> bool:
        """Whether test images are also seen flipped: as the model was trained (§3.1-3.2)."""
        return bool(self.config.get("flip", True))

    @property
    def mean_rgb(self) -> tuple[float, float, float]:
        """The mean RGB of the model's input: the one it subtracts itself, else the recorded one."""
        return self._own_mean_rgb() or recorded_mean_rgb(self.config)

    @property
    def includes_preprocessing(self) -> bool:
        """Whether the model subtracts :attr:`mean_rgb` itself and so takes RGB in [0, 255].

        Built with ``include_preprocessing=True``; otherwise the caller subtracts
        :attr:`mean_rgb` before feeding it.
        """
        return self._own_mean_rgb() is not None

    @property
    def mean_to_subtract(self) -> tuple[float, float, float] | None:
        """The mean RGB a caller subtracts from RGB in [0, 255] before feeding the model.

        None when the model subtracts it itself (:attr:`includes_preprocessing`),
        else :attr:`mean_rgb`. What evaluation, export and the localiser pass
        on to :func:`vgg_tf.inference.protocol.preprocess`.
        """
        return None if self.includes_preprocessing else self.mean_rgb

    def _own_mean_rgb(self) -> tuple[float, ...] | None:
        return None if self.model is None else builder.included_mean_rgb(self.model)

    @property
    def task(self) -> str:
        """``"classification"``, or ``"localisation"`` for a box regressor (Appendix A)."""
        return str(self.config.get("task") or "classification")

    def check_classifier(self) -> None:
        """Refuses a localisation net where class scores are expected."""
        if self.task != "classification":
            raise ValueError(
                f"Model {self.path!r} is a {self.task} net (it predicts boxes, not class "
                "scores); expected a classifier. Localisation nets are evaluated, exported "
                "and drawn with --task localisation (and --localiser in bin/predict)."
            )

    def check_rgb(self) -> None:
        """Refuses a model whose input is not 3 channels: images are read as RGB here.

        Evaluation, export and the input pipeline decode every image to RGB and
        subtract a mean RGB; a grayscale or multispectral model (built with
        another ``input_shape``) needs its own pipeline.
        """
        shape = self.model.input_shape
        channels = shape[1] if builder.data_format_of(self.model) == "channels_first" else shape[-1]
        if channels != 3:
            raise ValueError(
                f"Model {self.path!r} takes {channels}-channel input; evaluation and export "
                "read RGB images and expect a model with 3 input channels."
            )

    def _config_with_crop(self) -> dict:
        return {**self.config, "crop_size": self.crop_size}

    def single_scale(self) -> tuple[int]:
        """``(Q,)``: the single test scale of :func:`single_test_scale`."""
        return (workdir_lib.single_test_scale(self._config_with_crop(), repr(self.path)),)

    def multi_scales(self) -> tuple[int, ...]:
        """The multi-scale test set of :func:`multi_test_scales`."""
        return workdir_lib.multi_test_scales(self._config_with_crop(), repr(self.path))
