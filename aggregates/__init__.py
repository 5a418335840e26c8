"""Redis side of leadpulse: per-lead state, counters, cohort and window maths, read queries."""
