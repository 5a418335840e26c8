"""`leadpulse demo` and `generate`: a simulated marketing feed, its live view and alerts."""
