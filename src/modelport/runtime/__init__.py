"""modelport.runtime."""
