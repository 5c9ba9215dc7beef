"""python -m benchmarks: vgg_tf's performance side by side with keras.applications and the
machine's own matmul bound, as a table and JSON.

    python -m benchmarks                          # the full run (under 15 minutes on 2 cores)
    python -m benchmarks --quick --output q.json  # smoke test (under 3 minutes)
    python -m benchmarks --mixed_precision --jit_compile --output gpu.json   # on a GPU
"""

import sys

from vgg_tf.cli.entry import prepare_tensorflow, run_app

if __name__ == "__main__":
    prepare_tensorflow(sys.argv)  # the CPU path, a quiet import: as the commands do
    from benchmarks import suite

    run_app(suite.main, __doc__)
