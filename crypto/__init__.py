"""Sans-I/O core of PlexiChat Gateway.

Nothing in this package performs I/O: no asyncio, no sockets, no Redis. Protocol
objects take bytes and return bytes and events; the gateway and the clients drive them.
"""
