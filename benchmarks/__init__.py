"""`make bench`: the tutorials' plain code against our workloads, side by side in one run."""
