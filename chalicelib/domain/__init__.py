"""The gateway's concepts: accounts, devices, messages, jobs, OTP, sweeps.
Imports storage and core only."""
