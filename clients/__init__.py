"""Python client SDK and demo chat CLI; drives the same state machines as the gateway."""
