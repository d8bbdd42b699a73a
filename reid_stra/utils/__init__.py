"""Small shared helpers: atomic file writes, locks, devices."""
