"""Small helpers for applications that receive smsgw webhooks (copy the one you need)."""
