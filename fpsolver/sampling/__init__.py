"""Layer 3: particles (Euler–Maruyama) and their comparison with grid results.
Imports core and discrete."""
