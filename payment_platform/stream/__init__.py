"""The streaming scorer: read a batch → validate → featurise → score → decide → write → commit."""
