"""TensorFlow Serving's warm-up requests, written into every export.

When TensorFlow Serving loads a version it replays the requests in
``assets.extra/tf_serving_warmup_requests`` (a TFRecord file of
``tensorflow.serving.PredictionLog``) before the version takes traffic, so the
first client does not pay for the graph's first run (0.8 to 0.9 s against 0.2 s
after the replay, for net A at full width on 32-pixel crops through the TF1
loader). :func:`write_warmup_requests`
writes a few: a small JPEG and a small PNG, alone and together, for each signature
that takes ``image_bytes``.

The records are built without the ``tensorflow-serving-api`` package (it would pull
in a second TensorFlow): :func:`prediction_log` serialises messages of a descriptor
made here with the field numbers of ``tensorflow_serving/apis/prediction_log.proto``,
``predict.proto`` and ``model.proto``, holding TensorFlow's own ``TensorProto``. The
bytes are those of a ``PredictionLog`` whose ``predict_log.request`` names the
signature and holds the inputs, as a client's ``PredictRequest`` does.

Example:
    >>> record = prediction_log("serving_default", {"image_bytes": [b"..."]})
    >>> from tensorflow_serving.apis import prediction_log_pb2  # doctest: +SKIP
    >>> log = prediction_log_pb2.PredictionLog.FromString(record)  # doctest: +SKIP
    >>> log.predict_log.request.model_spec.signature_name  # doctest: +SKIP
    'serving_default'
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow as tf
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from vgg_tf.data.images import DEFAULT_LIMITS, ImageLimits

#: Where TensorFlow Serving looks for the requests, relative to the version directory.
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
#: The input every image signature of the exports takes.
IMAGE_INPUT = "image_bytes"

_PACKAGE = "vgg_tf.serving.warmup"
_FIELD = descriptor_pb2.FieldDescriptorProto


def _message(
    name: str, fields: Sequence[tuple[str, int, int, str]]
) -> descriptor_pb2.DescriptorProto:
    """A message of (name, number, type, message type name) singular fields."""
    message = descriptor_pb2.DescriptorProto(name=name)
    for field_name, number, kind, type_name in fields:
        field = message.field.add(
            name=field_name, number=number, type=kind, label=_FIELD.LABEL_OPTIONAL
        )
        if type_name:
            field.type_name = type_name
    return message


@functools.cache
def _prediction_log_class() -> type:
    """The message class of ``PredictionLog`` with only the fields a warm-up record uses.

    Field numbers as in TensorFlow Serving's protos: ``PredictionLog.predict_log = 6``,
    ``PredictLog.request = 1``, ``PredictRequest.model_spec = 1`` and ``inputs = 2``
    (``map<string, TensorProto>``), ``ModelSpec.name = 1`` and ``signature_name = 3``.
    Registered under a package of its own, so the real protos can be loaded beside it.
    """
    tensor_proto = tf.make_tensor_proto(0).DESCRIPTOR
    string, message = _FIELD.TYPE_STRING, _FIELD.TYPE_MESSAGE
    pool = descriptor_pool.Default()
    file_name = "vgg_tf/serving/warmup.proto"
    try:
        pool.FindFileByName(file_name)
    except KeyError:
        request = _message("PredictRequest", [("model_spec", 1, message, f".{_PACKAGE}.ModelSpec")])
        entry = _message(
            "InputsEntry",
            [("key", 1, string, ""), ("value", 2, message, f".{tensor_proto.full_name}")],
        )
        entry.options.map_entry = True
        request.nested_type.append(entry)
        request.field.add(
            name="inputs",
            number=2,
            type=message,
            type_name=f".{_PACKAGE}.PredictRequest.InputsEntry",
            label=_FIELD.LABEL_REPEATED,
        )
        proto = descriptor_pb2.FileDescriptorProto(
            name=file_name,
            package=_PACKAGE,
            syntax="proto3",
            dependency=[tensor_proto.file.name],
            message_type=[
                _message("ModelSpec", [("name", 1, string, ""), ("signature_name", 3, string, "")]),
                request,
                _message("PredictLog", [("request", 1, message, f".{_PACKAGE}.PredictRequest")]),
                _message("PredictionLog", [("predict_log", 6, message, f".{_PACKAGE}.PredictLog")]),
            ],
        )
        pool.AddSerializedFile(proto.SerializeToString())
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.PredictionLog"))


def prediction_log(
    signature_name: str, inputs: Mapping[str, Sequence[bytes] | np.ndarray], model_name: str = ""
) -> bytes:
    """A serialised ``tensorflow.serving.PredictionLog`` holding one predict request.

    Args:
        signature_name: The signature the request names.
        inputs: Input name -> values (made a tensor by ``tf.make_tensor_proto``).
        model_name: ``model_spec.name`` (TensorFlow Serving's warm-up ignores it).

    Example:
        >>> len(prediction_log("serving_default", {"image_bytes": [b"abc"]})) > 0
        True
    """
    log = _prediction_log_class()()
    request = log.predict_log.request
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    for name, values in inputs.items():
        tensor = tf.make_tensor_proto(values)
        request.inputs[name].MergeFromString(tensor.SerializeToString())
    return log.SerializeToString()


def _fitting(shape: tuple[int, int], limits: ImageLimits) -> tuple[int, int]:
    """``shape``, or a square within the limits when the limits refuse it."""
    height, width = shape
    too_thin = limits.max_aspect_ratio is not None and max(shape) > limits.max_aspect_ratio * min(
        shape
    )
    too_many = limits.max_pixels is not None and height * width > limits.max_pixels
    if not (too_thin or too_many):
        return shape
    side = (
        min(shape) if limits.max_pixels is None else min(min(shape), math.isqrt(limits.max_pixels))
    )
    return side, side


def warmup_images(limits: ImageLimits = DEFAULT_LIMITS) -> list[bytes]:
    """A small colour JPEG (48 x 64) and PNG (64 x 48) that the limits accept.

    Example:
        >>> [image[:4] for image in warmup_images()]
        [b'\\xff\\xd8\\xff\\xe0', b'\\x89PNG']
    """
    encoded = []
    for shape, encode in (((48, 64), tf.io.encode_jpeg), ((64, 48), tf.io.encode_png)):
        height, width = _fitting(shape, limits)
        rows, columns = np.mgrid[0:height, 0:width]
        pixels = np.stack(
            [255 * rows // height, 255 * columns // width, 255 * ((rows + columns) % 2)], -1
        )
        encoded.append(encode(tf.constant(pixels, tf.uint8)).numpy())
    return encoded


def write_warmup_requests(
    version_dir: str, signature_names: Sequence[str], limits: ImageLimits = DEFAULT_LIMITS
) -> str:
    """Writes ``version_dir/assets.extra/tf_serving_warmup_requests``; returns its path.

    For each signature (each takes ``image_bytes``): the JPEG, then the PNG and the
    JPEG in one call (:func:`warmup_images`). Written with ``tf.io`` (any filesystem
    TensorFlow reads: local, ``gs://``, ``ram://``).

    Args:
        version_dir: The SavedModel directory (before it is published).
        signature_names: The signatures to warm up.
        limits: The export's image limits: the images fit within them, so that every
            request answers (TensorFlow Serving refuses a version whose warm-up fails).

    Example:
        >>> write_warmup_requests("/tmp/model/1", ["serving_default"])  # doctest: +SKIP
        '/tmp/model/1/assets.extra/tf_serving_warmup_requests'
    """
    jpeg, png = warmup_images(limits)
    path = os.path.join(version_dir, WARMUP_FILE)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.TFRecordWriter(path) as writer:
        for signature in signature_names:
            for batch in ([jpeg], [png, jpeg]):
                writer.write(prediction_log(signature, {IMAGE_INPUT: batch}))
    return path
