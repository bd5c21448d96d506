"""modelport.cli."""
