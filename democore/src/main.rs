//! `corridor-democore`: runs one instance of the demo legacy core.
//!
//! Start two with different `--instance` names and ports to demo load
//! balancing and failover through the gateway.
#![forbid(unsafe_code)]

use clap::Parser;

/// A simulated legacy core-banking backend for Corridor's demo and tests.
#[derive(Parser, Debug)]
#[command(name = "corridor-democore", version)]
struct Args {
    /// Address to listen on (loopback by default: this is a demo, not a service).
    #[arg(long, default_value = "127.0.0.1:9001")]
    listen: String,
    /// Instance name, reported by /health, /test/* and the x-core-instance header.
    #[arg(long, default_value = "core-1")]
    instance: String,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot listen on {}: {e}", args.listen))
        })?;
    // Print the bound address: with port 0 the caller learns the real port here.
    eprintln!(
        "corridor-democore {} listening on http://{}",
        args.instance,
        listener.local_addr()?
    );
    corridor_democore::serve(listener, args.instance).await
}
