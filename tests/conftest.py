"""Shared fixtures. Each capability keeps its own fixtures in callcontrol.testing (shipped to
users, like trio.testing) and exposes them through the plugin below."""

pytest_plugins = ["callcontrol.testing.pytest_plugin"]
