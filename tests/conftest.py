"""Shared test settings: quiet TensorFlow, small thread pools for the 2-core CI machine."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
