"""pipeworkd: attach extra network interfaces to Docker containers."""

__version__ = "0.1.0"
