"""Data owners: schema, validation and secret-shared upload of their tables."""
