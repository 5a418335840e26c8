"""Kafka side of leadpulse: the event model, publishing, the Faust worker and the local stack."""
