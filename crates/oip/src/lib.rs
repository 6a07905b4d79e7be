//! KServe's Open Inference Protocol v2 (REST), without a server.
