"""stripectl: command-line operations toolkit for Stripe."""

__version__ = "0.1.0"
