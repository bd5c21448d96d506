"""modelport.ops."""
