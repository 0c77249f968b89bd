"""ticket-gateway: turns a support desk's email into tickets."""

__version__ = "0.1.0"
