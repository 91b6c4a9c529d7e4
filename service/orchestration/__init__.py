"""Orchestration: from a checked sweep file to trials on Ray and their collected results.

The sweep file's schema (:mod:`~service.orchestration.spec`, checked by
:mod:`~service.orchestration.checks`, read into trials by :mod:`~service.orchestration.points`),
the run directory and its state (:mod:`~service.orchestration.rundir`), sweeps on storage URIs
(:mod:`~service.orchestration.storage`), one trial (:mod:`~service.orchestration.trainable`),
Ray Tune (:mod:`~service.orchestration.tuner`, the one module that imports Ray Tune), Ray Jobs
(:mod:`~service.orchestration.jobs`, the one module that talks to a job server), Ray addresses
(:mod:`~service.orchestration.addresses`) and the collection of results
(:mod:`~service.orchestration.collect`). See docs/ARCHITECTURE.md.
"""
