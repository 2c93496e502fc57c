"""Settings, time, ids, errors, caches and metrics: what every layer may import."""
