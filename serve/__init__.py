"""serve: the best trained MLP over HTTP."""
