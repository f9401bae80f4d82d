"""Load generators and reports: ``python -m bench <scenario> ... --json PATH``."""
