"""The gateway's code, in layers that import only downwards and never Chalice:
surfaces (HTTP faces) -> domain (the gateway's concepts) -> storage (tables, AWS) -> core."""
