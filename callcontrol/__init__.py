"""callcontrol: a FreeSWITCH call-control server for an AI voice secretary."""

import os

# One BLAS thread, set before numpy loads: the media engine's batched resampler runs small
# matrix products on the call thread, and OpenBLAS's own threads would take another core (and
# doubled the CPU per frame on L16 lines in bench/media.py) for no gain. serve scales over cores
# with worker processes instead. An explicit setting in the environment wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
