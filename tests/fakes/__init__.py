"""Purpose-built fake servers for what localstripe lacks. Loopback only."""
