"""Personal data over its life: retention and purge, erasure on request, the access log."""
