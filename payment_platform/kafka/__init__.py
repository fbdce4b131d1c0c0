"""Kafka plumbing: client configuration, topics, the embedded broker."""
