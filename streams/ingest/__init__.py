"""Events into Kafka: files and stdin (`publish`), the HTTP API and vendor webhooks (`api`)."""
