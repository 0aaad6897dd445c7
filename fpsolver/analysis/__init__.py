"""Layer 3: analysis tools (stationary, spectrum, passage, Lyapunov). Imports core and discrete."""
