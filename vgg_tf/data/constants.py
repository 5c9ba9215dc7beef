"""Constants of the data: ImageNet's pixel statistics, and the image-size limits.

One copy each, used by the input pipeline, the weight importers and the loaders
alike. Nothing here imports TensorFlow: the recipes and the commands' flags
read these before it loads.

Example:
    >>> IMAGENET_MEAN_RGB
    (123.68, 116.779, 103.939)
"""

#: The mean RGB of ILSVRC-2012's training images, as the authors' Caffe models
#: subtract it (keras.applications' ``preprocess_input`` gives it in BGR order:
#: 103.939, 116.779, 123.68). A recipe on ImageNet without its own mean uses it.
IMAGENET_MEAN_RGB = (123.68, 116.779, 103.939)

# Krizhevsky et al. (2012) PCA lighting on ImageNet, as published with
# fb.resnet.torch for pixels in [0, 1]; scaled here to pixels in [0, 255].
# Columns of the eigenvector matrix are the eigenvectors.
IMAGENET_PCA_EIGVAL = tuple(255.0 * v for v in (0.2175, 0.0188, 0.0045))
IMAGENET_PCA_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)

#: Images whose header declares more pixels are refused before decoding.
DEFAULT_MAX_PIXELS = 40_000_000
#: ... and so are images whose longer side is more than this times the shorter.
DEFAULT_MAX_ASPECT_RATIO = 16.0
