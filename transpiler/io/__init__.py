"""Layer 1, io: TF protos without the TF runtime, model readers, checkpoint files, the one module that starts TF."""
