//! Compiles the node's store registry protocol (owned by the node crate) into a client for the
//! Strata workload, with protox: no system protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let file = "../node/proto/strata/node/v1/registry.proto";
    let fds = protox::compile([file], ["../node/proto"])?;
    tonic_prost_build::configure()
        .build_server(false)
        .compile_fds(fds)?;
    println!("cargo:rerun-if-changed={file}");
    Ok(())
}
