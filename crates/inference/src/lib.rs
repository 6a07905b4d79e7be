//! The inference module: KServe's Open Inference Protocol v2 over ONNX
//! models run in-process.

pub mod drift;
pub mod feedback;
pub mod policy;
