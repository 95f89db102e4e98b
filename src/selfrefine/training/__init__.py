"""Training: one seeded, resumable loop and the tasks it runs (mix-training, separator training)."""
