"""modelport.registry."""
