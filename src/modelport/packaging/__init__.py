"""modelport.packaging."""
