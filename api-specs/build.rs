//! Generates the MEAO-MEP link's gRPC code from `proto/meplink.proto` (protox: no protoc needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/meplink.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["proto"])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
