"""modelport.rollout."""
