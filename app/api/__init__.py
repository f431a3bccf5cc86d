"""One blueprint module per endpoint family."""
