"""tf-transpile: move TensorFlow models between TensorFlow releases.

The pipeline: read a model, lift its graphs into the IR (``transpiler.ir``),
run passes chosen for the target release, validate against the target's
opset, and write the result atomically.
"""

__version__ = "0.1.0"
