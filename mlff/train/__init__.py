"""Training: config, losses, trainer with EMA and exact resume, evaluation and plots."""
