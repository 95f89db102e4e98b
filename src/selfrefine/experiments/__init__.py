"""The experiment faces: batches of DVC experiments run through DVC's queue, and what is read off them.

- :mod:`~selfrefine.experiments.queue`: queue, run and collect a batch of ``dvc exp run --queue`` experiments,
  resumable by its stamp (the one place that talks to DVC's queue).
- :mod:`~selfrefine.experiments.report`: what the faces share: kept per-song scores, interval and share
  formatting, condition aliases, measured batch times, and the generated sections of ``docs/``.
- :mod:`~selfrefine.experiments.compare` (``selfrefine compare``, with
  :mod:`~selfrefine.experiments.compare_docs`, which renders its table) and :mod:`~selfrefine.experiments.studies`
  (``selfrefine study NAME``): the two faces. Neither imports the other (a test holds it); both stand on the
  two modules above.

Nothing in this package is a dependency of any DVC stage.
"""

#: The faces of this package and their modules: each may import the shared modules and its own, never another
#: face's.
FACES = {"compare": ("compare", "compare_docs"), "studies": ("studies",)}
