"""Sources that put payments (and, later in event time, their labels) on Kafka."""
