"""What reaches people: practice lists for direct care and commissioner outputs."""
