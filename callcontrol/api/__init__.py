"""The HTTP API: health, metrics (more endpoints arrive with the callbacks work)."""
