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
    // Chunk bytes as `bytes::Bytes`: a store hands out slices of what it read, and a querier's
    // decoded chunks point into the received frame, instead of a copy per chunk on each side.
    tonic_prost_build::configure()
        .bytes(".thanos.Chunk.data")
        .compile_fds(fds)?;
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    Ok(())
}
