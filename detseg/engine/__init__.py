"""Training engine: a plain loop, checkpoints, run folders."""
