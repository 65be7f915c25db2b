//! Generates the contracts with the vendored protoc: no system protoc is needed.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files: Vec<PathBuf> = [
        "common",
        "registry",
        "evidence",
        "surveys",
        "scoring",
        "scheduler",
        "events",
    ]
    .iter()
    .map(|p| root.join(format!("cezone/{p}/v1/{p}.proto")))
    .collect();
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("cezone_descriptor.bin"))
        .compile_with_config(config, &files, std::slice::from_ref(&root))?;

    // The proto3 JSON mapping of every message (serde impls beside the prost types), for the
    // HTTP/JSON API: lowerCamelCase names, enums by name, 64-bit integers as strings, bytes in
    // base64; unknown fields are refused, so a misspelt field is an error and not a default.
    let descriptors = std::fs::read(out.join("cezone_descriptor.bin"))?;
    pbjson_build::Builder::new()
        .register_descriptors(&descriptors)?
        .build(&[".cezone"])?;

    // The scoring service's server once more, wire for wire the same, with its GetScores answer
    // typed as bytes encoded in advance (`crate::Encoded`), so a server can keep answers it has
    // already encoded. Every message is the one generated above.
    let encoded = out.join("encoded");
    std::fs::create_dir_all(&encoded)?;
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        .build_client(false)
        .out_dir(&encoded)
        .extern_path(".cezone.scoring.v1.OrgUnitScores", "crate::Encoded")
        .extern_path(".cezone.scoring.v1", "crate::scoring::v1")
        .extern_path(".cezone.common.v1", "crate::common::v1")
        .compile_with_config(
            config,
            &[root.join("cezone/scoring/v1/scoring.proto")],
            std::slice::from_ref(&root),
        )?;
    println!("cargo:rerun-if-changed={}", root.display());
    Ok(())
}
