"""Two-server MPC core: additive shares over Z_2^64, a dealer, a counted peer link, protocols."""
