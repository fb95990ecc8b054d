"""`just demo`: a durable agent is killed mid-run and resumes without repeating its recorded calls."""
