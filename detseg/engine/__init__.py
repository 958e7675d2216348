"""Training engine: a plain loop, run folders, resume checks (checkpoint files: :mod:`detseg.checkpoint_io`)."""
