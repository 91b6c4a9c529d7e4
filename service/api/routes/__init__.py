"""One router per resource: sweeps, health, and the web pages."""
