"""Layer 1: the physics and pure functions (grid, boundary, model, initial densities,
save schedule, diagnostics, analytic solutions). Imports nothing else of fpsolver."""
