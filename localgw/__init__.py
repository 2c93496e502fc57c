"""The local gateway's parts that are not the gateway itself: the HTTP server standing in for API
Gateway, the data folder with its snapshot of the emulated AWS, and how the admin CLI finds a
running local gateway, and the event pumps standing in for Lambda's stream and queue triggers.
Nothing here is deployed."""
