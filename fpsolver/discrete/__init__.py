"""Layer 2: the discretised operator (Scharfetter–Gummel links, generator, symmetric
form, null vectors) and the linear solvers. Imports only :mod:`fpsolver.core`."""
