"""The separators, one module each: the registry of separators is this package.

A module ``<name>.py`` here defines ``MODEL`` (the class, built from ``separators.<name>.model`` in
params.yaml plus the data's sources, channels, rate and the training segment) and ``LOSSES`` (the
losses ``separators.<name>.train.loss`` chooses from). Adding a separator is one such module, one
params block and its name in ``separate.models``; DVC then runs ``train@<name>`` and
``evaluate@<name>`` and nothing else.
"""
