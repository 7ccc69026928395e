"""The fused image-text model: towers, heads, artifact format and the runtime that serves it."""
