//! Compiles the .proto files with protox (pure Rust: no system protoc needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/strata/raft/v1/raft.proto",
        "proto/thanos/store/labelpb/types.proto",
        "proto/thanos/store/storepb/types.proto",
        "proto/thanos/store/storepb/rpc.proto",
        "proto/thanos/info/infopb/rpc.proto",
        "proto/thanos/rules/rulespb/rpc.proto",
        "proto/prometheus/prompb/types.proto",
        "proto/prometheus/prompb/remote.proto",
    ];
    let fds = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure().compile_fds(fds)?;
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    Ok(())
}
