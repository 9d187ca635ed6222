"""Training and evaluation engine shared by train.py and validate.py: data sets, command-line
options, device and mixed-precision setup, the evaluation loop and atomic checkpointing."""
