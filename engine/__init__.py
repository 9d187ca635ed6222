"""Training and evaluation engine shared by the scripts: data sets, command-line options and their
checks, where the weights come from, device and mixed-precision setup, the evaluation loop, atomic
files and checkpointing, and one-line user errors (also used by mmadapter's tools)."""
