"""todobot process wiring: config, lifecycle, messages, dispatcher and transports."""
