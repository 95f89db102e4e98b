"""The stage bodies: one module per DVC stage, each run as ``python -m selfrefine.stages.<name>``.

Each reads params.yaml (validated), reads its inputs at the paths of :mod:`selfrefine.paths`, calls
the library and writes its outputs atomically. A stage imports only what it uses, so ``dvc.yaml`` can
declare exactly its code (a test holds the two together), and the faces on top (``selfrefine`` CLI,
``compare``) are a dependency of no stage.
"""
