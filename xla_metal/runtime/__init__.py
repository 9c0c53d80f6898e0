"""The runtime: handles, transfers and execution behind the PJRT surface."""
