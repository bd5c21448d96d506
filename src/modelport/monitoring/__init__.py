"""modelport.monitoring."""
