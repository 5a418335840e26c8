"""Prometheus side of leadpulse: the collector, its HTTP server, alert rules and dashboards."""
