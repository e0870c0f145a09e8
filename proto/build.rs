//! Compiles `zen.proto` with the pure-Rust `protox`, so no `protoc` is needed.
//! The client and server halves are gated on this crate's `client` and `server`
//! features, so the shim links no server code.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=zen.proto");
    let fds = protox::compile(["zen.proto"], ["."])?;
    tonic_prost_build::configure()
        .build_transport(false)
        .bytes(".zen.v1.Frame.json")
        .client_mod_attribute("zen.v1", "#[cfg(feature = \"client\")]")
        .server_mod_attribute("zen.v1", "#[cfg(feature = \"server\")]")
        .compile_fds(fds)?;
    Ok(())
}
