"""The score store: contract tables and the fast batch writer."""
