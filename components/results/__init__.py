"""Statistics of a run and overfitting guards of a sweep (DESIGN section 9)."""
