"""Real TensorFlow releases on this machine: provisioned once, cached, run in isolation."""
