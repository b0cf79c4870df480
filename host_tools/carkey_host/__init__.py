"""carkey host tools: CLI, deploy, provisioning, simulated phone, virtual board."""

__version__ = "0.1.0"
