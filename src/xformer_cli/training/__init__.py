"""The training loop and what it needs: run data, corpus cache, checkpoints, run folder, validation."""
