"""The service side of E2RNAS sweeps: the ``e2rnas`` command, sweeps on Ray, results, analysis
and the web service, in layers (docs/ARCHITECTURE.md):

``cli`` > ``api`` > ``orchestration`` > ``analysis`` > ``results`` > ``objectives``,
``files``, ``logs``, ``yamltext`` > ``errors``; each may import only the ones after it, and all
of them may import :mod:`search_core`, which never imports this package.
"""
