"""The owner's insight: what the phones did, counted as it happens (stats), read by the
dashboard's charts and GET /v1/stats. Imported only by the counting stream function, the
dashboard and that route."""
