"""What tests share: harnesses (two parties over real sockets, two in-process servers, the
fuzzer, the kill-and-retry driver), test data, and small helpers. No test module imports
another; they all import from here."""
