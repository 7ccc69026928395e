"""Facts that the services, their clients and the deployment share, defined once here (settings
in this package use them as their defaults)."""

# gRPC send/receive message limit of both services and of their clients: a Score call of
# 20,000 candidates x 384 floats (WorkerSettings.max_score_candidates) fits in it.
MAX_MESSAGE_MB = 64
MAX_MESSAGE_BYTES = MAX_MESSAGE_MB * 1024 * 1024

# The Qdrant collection of the photos (GatewaySettings.qdrant_collection, the prod collection Job).
DEFAULT_COLLECTION = "withsense_images"
