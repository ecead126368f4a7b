//! `corridor-democore`: runs one instance of the demo legacy core.
//!
//! Start two with different `--instance` names and ports to demo load
//! balancing and failover through the gateway. `--iso-listen` adds the ISO 8583
//! card host on a port of its own.
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
    /// Also run the ISO 8583 card host on this address (e.g. 127.0.0.1:9583; off by default).
    #[arg(long, value_name = "ADDR")]
    iso_listen: Option<String>,
}

async fn bind(addr: &str) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let listener = bind(&args.listen).await?;
    let iso_listener = match &args.iso_listen {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    // Print the bound addresses: with port 0 the caller learns the real port here.
    eprintln!(
        "corridor-democore {} listening on http://{}",
        args.instance,
        listener.local_addr()?
    );
    let http = corridor_democore::serve(listener, args.instance.clone());
    let Some(iso_listener) = iso_listener else {
        return http.await;
    };
    eprintln!(
        "corridor-democore {} ISO 8583 host listening on tcp://{}",
        args.instance,
        iso_listener.local_addr()?
    );
    tokio::try_join!(http, corridor_democore::serve_iso8583(iso_listener))?;
    Ok(())
}
