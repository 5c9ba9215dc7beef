"""vgg_tf's performance, side by side: ``python -m benchmarks [--quick] [--output FILE.json]``.

One run measures, interleaving the two sides of every comparison so that the
machine's noise hits both alike, and reports medians:

* :mod:`benchmarks.machine` -- the fp32 matmul peak, the physical bound of the machine;
* :mod:`benchmarks.models` -- VGG-16 (D) inference and training, vgg_tf against
  ``keras.applications.VGG16`` (``predict_on_batch``, ``model.fit``);
* :mod:`benchmarks.pipeline` -- the training input pipeline, fused crop-decode
  against the naive decode-resize-crop, at S = 256, 512 and jittered;
* :mod:`benchmarks.evaluation` -- dense against multi-crop evaluation (GMACs, wall time);
* :mod:`benchmarks.serving` -- the exported ``serving_default`` latency for one JPEG
  against the bare forward pass at the same scales;
* :mod:`benchmarks.memory` -- peak resident memory of a short D training run (in a
  child process) against weights + gradients + momentum + activations.

:mod:`benchmarks.suite` runs them, prints the table with the targets met or
not, and writes every figure as JSON. Weights are random: cost does not depend
on them, and nothing is downloaded.
"""
