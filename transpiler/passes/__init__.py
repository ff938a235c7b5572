"""Layer 5, passes: one module per pass, each run(ir, ctx) -> PassLog (base.py); validate.py is the last stage."""
