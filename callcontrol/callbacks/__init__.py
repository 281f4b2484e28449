"""Callbacks: what callers asked for when nobody could answer, kept until someone acts."""
