"""HTTP and websocket routes: parse, authorize, call a service, map errors."""
