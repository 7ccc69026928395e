"""The gateway's HTTP side: a web page to search and see the photos, and an HTTP/JSON API with
the gRPC semantics (the same serving code, limits, API keys and status codes)."""
