"""The inference worker: gRPC InferenceService over the fused image-text model.

Split like vLLM's entrypoints: `protocol` (request validation -> typed inputs), `serving`
(dynamic batching, the model thread, metrics), `servicer` (grpc.aio transport and status codes),
`server` (start/stop, health, reflection, signals).
"""
