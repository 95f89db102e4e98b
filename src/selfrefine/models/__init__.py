"""Models: the instrument classifier, the separators, and the registry that names and rebuilds them."""
