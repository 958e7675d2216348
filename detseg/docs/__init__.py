"""Computations behind the generated documentation (``tools/make_docs.py``).

:mod:`.design` builds real layers and models and counts them for ``docs/architectures.md`` and
``docs/model_zoo.md``. It imports the models, so it sits on top of the library next to
:mod:`detseg.cli`: nothing else in ``detseg`` imports this package (``tests/test_layering.py``).
"""
