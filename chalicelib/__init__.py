"""Domain of the SMS gateway: accounts, devices, messages, OTP. Never imports Chalice."""
