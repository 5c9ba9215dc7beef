"""Localisation (Appendix A) on the built-in digits-on-canvas: SCR by default.

The classifier of the README's main job starts it: ``bin/train --variant A``
gives ``workdirs/digits_A``, whose layers but the last initialise the box
regressor, with the paper's localisation learning rate (1e-3) and a fixed S.
Canvases are 64x64 (:mod:`vgg_tf.data.builtin.digits_on_canvas`); at S = 48 a
32x32 crop sees two thirds of the canvas, as the paper's 224 crops of S = 256
or 384 images see part of them. Same input as the classifier (crop 32, no
flips, batch norm), so every layer but the last carries over.

    bin/train --variant A
    bin/train --task localisation --head scr --init_from workdirs/digits_A
    bin/train --task localisation --head pcr --init_from workdirs/digits_A
    bin/evaluate --task localisation --model workdirs/digits_on_canvas_A_scr \
        --classifier workdirs/digits_A --scales 40,48,56 --offsets 4 --windows crops

A 32-pixel crop ends in a 1x1 pooling map, so its boxes are evaluated with each
window cropped (``--windows crops``; BUILD.md, "Localisation").

SCR, not the paper's PCR: with ten classes and 2,874 canvases each PCR output
sees a tenth of the data, and SCR measured better here (BUILD.md, "Localisation").
"""

from vgg_tf.training.recipe import paper_recipe


def get_config():
    config = paper_recipe()
    config.recipe = "localisation_digits"
    config.task = "localisation"
    config.head = "scr"
    config.dataset = "digits_on_canvas"
    config.init_from_required = "the digits classifier (bin/train --variant A: workdirs/digits_A)"
    config.kernel_initializer = "glorot"
    config.batch_norm = True
    config.crop_size = 32
    config.scale_min, config.scale_max = 48, 48  # fixed S, as the paper's localisation nets
    config.flip = False  # a mirrored digit is another glyph
    config.learning_rate = 1e-3  # Appendix A
    config.batch_size = 32
    config.epochs = 12
    config.checkpoint_every_steps = 20
    config.log_every_steps = 10
    return config
