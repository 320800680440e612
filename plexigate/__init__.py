"""Application entry point (`plexigate`): sits above gateway/, clients/ and loadtest/."""
