"""Loading, validating and compiling the two config files into a `Snapshot`."""
