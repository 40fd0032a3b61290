"""Ready search spaces over hardware, parallelism, quantization, batching and serving."""
