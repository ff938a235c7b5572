"""What the dump scripts run inside each release share (Python 2.7 and 3; no package imports).

The scripts are run as files (`python tools/dump_X.py`), so this module is found
beside them on sys.path.
"""
import json
import sys


def tf_version(tf):
    """The running release: tf.__version__ (1.x) or tf.version.VERSION."""
    return getattr(tf, "__version__", None) or tf.version.VERSION


def write_dump(doc, out, summary):
    """`doc` as one JSON object to the file `out` (stdout when None); `summary` one line on stderr."""
    text = json.dumps(doc, sort_keys=True)
    if out:
        with open(out, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text + "\n")
    sys.stderr.write(summary + "\n")
