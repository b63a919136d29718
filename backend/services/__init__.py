"""Domain services: every rule of the queue lives here, free of HTTP concerns."""
