"""Relational operators on shared tables: the sorting-based foreign-key join and its kin."""
