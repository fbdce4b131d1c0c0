"""The Dagster face of the platform, one module per domain; the domain code never imports Dagster."""
