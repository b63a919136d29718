"""SOS agent: the customer's side of the support queue."""

__version__ = "0.1.0"
