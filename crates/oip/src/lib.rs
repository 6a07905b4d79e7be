//! KServe's Open Inference Protocol v2 (REST), without a server.
//!
//! The wire types of the protocol's JSON bodies (server and model metadata,
//! infer requests and responses, the repository extension) and the tensor
//! decoder that checks a request's `data` against its `datatype` and
//! `shape`. It knows nothing of models or runtimes, so the fuzz target of
//! the decoder links this crate alone. Reference:
//! <https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/>.

mod datatype;
pub mod tensor;
mod wire;

pub use datatype::{Datatype, UnknownDatatype};
pub use tensor::{decode, element_count, DecodeError, RawData, TensorData};
pub use wire::*;
