#!/usr/bin/env python3
"""Load a SavedModel the TF 2 way (tf.saved_model.load) and call one signature.

    tf2_load.py DIR SIGNATURE in.npz

Feeds every array of in.npz as the keyword argument of the same name and
prints one JSON line: {"ok": true, "tf_version": ..., "outputs": {key: list}}
(exit 0) or {"ok": false, "error": ..., "type": ..., "stage": "load"|"call"}
(exit 3).  Runs in the host's TF and in the provisioned TF 2.x releases.
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def main(path, signature, inputs):
    stage = "load"
    try:
        loaded = tf.saved_model.load(path)
        stage = "call"
        fn = loaded.signatures[signature]
        with np.load(inputs, allow_pickle=False) as f:
            feeds = {k: tf.constant(f[k]) for k in f.files}
        out = fn(**feeds)
        result = {k: v.numpy().tolist() for k, v in out.items()}
    except Exception as e:  # noqa: BLE001 - reported to the caller
        print(json.dumps({"ok": False, "error": str(e)[:4000], "type": type(e).__name__,
                          "stage": stage}))
        return 3
    print(json.dumps({"ok": True, "tf_version": tf.__version__, "outputs": result}))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
