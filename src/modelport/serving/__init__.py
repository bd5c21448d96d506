"""modelport.serving."""
