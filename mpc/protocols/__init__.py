"""Protocols on shares. Each function states its rounds and the bytes each server sends per
element; n is the number of elements."""
