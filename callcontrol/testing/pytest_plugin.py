"""pytest fixtures for callcontrol's own tests and for users testing their dialplans/prompts.

Each capability adds its fixtures here by importing them from its own module.
"""
