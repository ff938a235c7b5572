"""The one place that starts the TensorFlow runtime (imported lazily).

Reading protos never needs it (see protos.py); running graphs does: rule
examples, checkpoint conversion, the TF 2 back end.
"""

from __future__ import annotations

import os
from typing import Dict, List

import numpy as np


def tf():
    """The `tensorflow` module, imported on first use with its logging quiet.

    Recent releases print absl/oneDNN notices to fd 2 during import whatever
    TF_CPP_MIN_LOG_LEVEL says; users of a CLI should not see them.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    return tensorflow


def run_graph(graph_def, feeds: Dict[str, np.ndarray], fetches: List[str], init: List[str] = ()) -> List[np.ndarray]:
    """Import `graph_def` into a fresh graph and run it in a v1 session (the `init` ops first)."""
    t = tf()
    with t.Graph().as_default() as graph:
        t.graph_util.import_graph_def(graph_def, name="")
        with t.compat.v1.Session(graph=graph) as session:
            if init:
                session.run(list(init))
            return session.run(fetches, feed_dict=feeds)
