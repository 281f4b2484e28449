"""The attended transfer: destinations rung on hold, bridged, or a typed failure."""
