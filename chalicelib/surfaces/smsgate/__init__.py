"""SMSGate's faces on our domain: its Android app's device API (`/mobile/v1`) and its client
API (`/3rdparty/v1`). Ids, states, errors and webhook bodies are translated here; the domain
keeps one lifecycle. Imported lazily by app.py: neither face is on the compat API's path."""
