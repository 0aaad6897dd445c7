"""Layer 3: time integration (steppers, trackers, the loop). Imports core and discrete."""
