"""What every Kafka client of leadpulse shares: the rejected-topic envelope."""
