"""The two compute servers and the dealer as processes: configuration and wiring."""
