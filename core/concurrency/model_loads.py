"""One model load at a time in a process.

transformers builds a model under process-global patches (its weights are first made on the meta device,
then filled in), so two loads at once in two threads can leave one model's weights on the meta device:
a page loading the reranker while the bi-encoder loaded in the background failed with "Cannot copy out of
meta tensor". Every load (and OpenVINO's conversion, which traces the torch model) takes this lock.
"""

from __future__ import annotations

import threading

MODEL_LOADS = threading.RLock()
