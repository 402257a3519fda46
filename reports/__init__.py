"""HTML reports of stored runs and of the store."""
