"""The shared floor: data, training loop, checkpoints, results, plots, command-line flags."""
