"""The pipeline benchmark's peers: the same core job done with Quix Streams and with Kafka Streams (docs/bench.md)."""
