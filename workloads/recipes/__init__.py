"""The four workloads, one module each (keras-io style: data, model, train, evaluate, plot)."""
