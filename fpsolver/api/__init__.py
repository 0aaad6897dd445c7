"""The public conveniences: :class:`FokkerPlanck` and :func:`solve`.

This layer sits on top of the numerics: it may import every layer below
(core, discrete, integrate, analysis, sampling, io); nothing below imports it.
"""
