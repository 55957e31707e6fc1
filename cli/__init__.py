"""The `twofold` command line."""
