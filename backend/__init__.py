"""SOS backend: the service-case queue."""

__version__ = "0.1.0"
