"""Machine learning on the shared join result."""
