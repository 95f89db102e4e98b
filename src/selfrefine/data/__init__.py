"""Data: the embedded songs (synth), label noise (noise), the index and label tables, stem access and mixing."""
