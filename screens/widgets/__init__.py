"""Reusable widgets (each carries its own scoped DEFAULT_CSS)."""
