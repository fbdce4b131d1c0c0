"""payment_platform: real-time payment fraud scoring on Kafka and MySQL, orchestrated by Dagster."""
