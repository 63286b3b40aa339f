"""Where to run: the node pools that can host a job, and the one with the lowest expected emissions."""
