"""Small shared helpers of the Dagster code location."""
