//! cezone's gRPC and event contracts (`proto/`), generated at build time: the prost messages,
//! the tonic clients and servers, and every message's proto3 JSON mapping (serde, by pbjson).

#![allow(clippy::all, missing_debug_implementations)]

pub mod common {
    pub mod v1 {
        tonic::include_proto!("cezone.common.v1");
        include!(concat!(env!("OUT_DIR"), "/cezone.common.v1.serde.rs"));
    }
}
pub mod registry {
    pub mod v1 {
        tonic::include_proto!("cezone.registry.v1");
        include!(concat!(env!("OUT_DIR"), "/cezone.registry.v1.serde.rs"));
    }
}
pub mod evidence {
    pub mod v1 {
        tonic::include_proto!("cezone.evidence.v1");
        include!(concat!(env!("OUT_DIR"), "/cezone.evidence.v1.serde.rs"));
    }
}
pub mod surveys {
    pub mod v1 {
        tonic::include_proto!("cezone.surveys.v1");
        include!(concat!(env!("OUT_DIR"), "/cezone.surveys.v1.serde.rs"));
    }
}
pub mod scoring {
    pub mod v1 {
        tonic::include_proto!("cezone.scoring.v1");
        include!(concat!(env!("OUT_DIR"), "/cezone.scoring.v1.serde.rs"));

        /// The scoring service's server with `GetScores` answered by an [`Encoded`](crate::Encoded)
        /// `OrgUnitScores`: the same service on the wire as `scoring_service_server`.
        pub mod encoded {
            include!(concat!(env!("OUT_DIR"), "/encoded/cezone.scoring.v1.rs"));
        }
    }
}
pub mod scheduler {
    pub mod v1 {
        tonic::include_proto!("cezone.scheduler.v1");
        include!(concat!(env!("OUT_DIR"), "/cezone.scheduler.v1.serde.rs"));
    }
}
pub mod events {
    pub mod v1 {
        tonic::include_proto!("cezone.events.v1");
        include!(concat!(env!("OUT_DIR"), "/cezone.events.v1.serde.rs"));
    }
}

mod encoded;
pub use encoded::Encoded;

/// Every service's descriptors, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("cezone_descriptor");
