//! Receives from a topic with `recv().await` and as a stream, on a single-threaded tokio runtime (needs a running
//! daemon): `cargo run -p bus-client --features tokio --example async_sub -- TOPIC [COUNT]`.

use bus_client::{AsyncSubscriber, Bus};
use std::future::poll_fn;
use std::pin::Pin;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let topic = args.next().unwrap_or_else(|| "orders".into());
    let count: usize = args.next().map(|c| c.parse()).transpose()?.unwrap_or(10);
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
    rt.block_on(async {
        let bus = Bus::connect()?;
        let mut sub = AsyncSubscriber::new(bus.subscriber(&topic)?)?;
        println!("waiting for {count} messages on {topic:?}");
        // One message with recv().await ...
        let m = sub.recv().await?;
        println!("#{} from publisher {}: {} bytes", m.seq(), m.publisher(), m.len());
        // ... the rest as a stream (futures_core::Stream; `StreamExt::next` from futures or tokio-stream works
        // too).
        for _ in 1..count {
            match poll_fn(|cx| futures_core::Stream::poll_next(Pin::new(&mut sub), cx)).await {
                Some(Ok(m)) => println!("#{}: {} bytes", m.seq(), m.len()),
                Some(Err(e)) => eprintln!("{e}"),
                None => break,
            }
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}
