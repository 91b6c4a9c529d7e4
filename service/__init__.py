"""The service layer of E2RNAS sweeps: the ``e2rnas`` command line (later Ray sweeps and a web app).

It depends on :mod:`search_core`, never the reverse.
"""
