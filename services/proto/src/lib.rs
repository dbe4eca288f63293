//! Generated protobuf messages and gRPC stubs for every `trace.*.v1` package, and the
//! encoded file descriptor set that gRPC reflection and payload rendering read.

#![allow(clippy::all, missing_docs)]

/// Encoded `FileDescriptorSet` of every trace proto and its imports.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/trace_descriptor.bin"));

pub mod common {
    pub mod v1 {
        tonic::include_proto!("trace.common.v1");
    }
}

pub mod event {
    pub mod v1 {
        tonic::include_proto!("trace.event.v1");
    }
}

pub mod document {
    pub mod v1 {
        tonic::include_proto!("trace.document.v1");
    }
}

pub mod archive {
    pub mod v1 {
        tonic::include_proto!("trace.archive.v1");
    }
}

pub mod project {
    pub mod v1 {
        tonic::include_proto!("trace.project.v1");
    }
}

pub mod meeting {
    pub mod v1 {
        tonic::include_proto!("trace.meeting.v1");
    }
}

pub mod worklog {
    pub mod v1 {
        tonic::include_proto!("trace.worklog.v1");
    }
}

pub mod inspection {
    pub mod v1 {
        tonic::include_proto!("trace.inspection.v1");
    }
}

pub use prost_types::{Any, Timestamp};
