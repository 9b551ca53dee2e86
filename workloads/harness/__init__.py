"""One run of a workload: its typed record, result.json and its schema, thresholds, summary."""
