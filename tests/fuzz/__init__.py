"""Property-based fuzzing (hypothesis) of the parsers that take outside input."""
