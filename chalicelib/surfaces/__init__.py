"""HTTP faces: parse requests into domain calls and answer envelopes.
No layer below imports them."""
