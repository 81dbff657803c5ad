"""The five panes of the main screen, one per key: runs, compare, datasets, GPUs, models."""
