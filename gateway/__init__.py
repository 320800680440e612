"""asyncio I/O around the sans-I/O core: WebSocket server, sessions, channels, stores."""
