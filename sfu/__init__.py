"""The media plane: workers, routers, transports, producers, consumers and taps on aiortc transports."""
