"""Pure domain: value objects, the error tree, settings and the clock. No I/O."""
