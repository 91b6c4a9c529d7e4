"""Analysis of a results table: the Pareto front (:mod:`~service.analysis.pareto`), the figures
(data steps in :mod:`~service.analysis.plotdata`, drawing steps in
:mod:`~service.analysis.figures`, shared by the web pages and the offline report of
:mod:`~service.analysis.report`), and the export of the front's genotypes
(:mod:`~service.analysis.export`). Nothing here knows Ray or the database; it takes tables and
gives numbers, figures and files. See docs/ARCHITECTURE.md."""
