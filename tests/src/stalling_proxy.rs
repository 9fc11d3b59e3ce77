//! A TCP proxy on 127.0.0.1 that stalls what the server sends, on command.
//!
//! Why: some behaviour depends on a server going quiet in the middle of a burst (a broker that
//! pauses between two deliveries of one prefetch window). Freezing the server process lands
//! its pauses wherever the scheduler happens to be; a proxy can pause after every so many bytes
//! it forwards towards the client, so the pauses fall inside bursts, every time. Bytes are
//! delayed, never dropped or reordered: to the client it looks like a slow server or network.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// When the proxy stalls the server-to-client direction.
#[derive(Clone, Copy, Debug)]
pub struct Stalls {
    /// Stall after every `every_bytes` forwarded towards the client (per connection).
    pub every_bytes: usize,
    /// How long each stall lasts.
    pub pause: Duration,
    /// Stalls in all, over every connection; after that the proxy forwards freely.
    pub at_most: u32,
}

/// A running proxy. Dropped, it stops accepting; connections already made run on until either
/// side closes them.
pub struct StallingProxy {
    port: u16,
    stalled: Arc<AtomicU32>,
    accept: JoinHandle<()>,
}

impl StallingProxy {
    /// Listens on a fresh 127.0.0.1 port and forwards every connection to `target_port`.
    pub async fn start(target_port: u16, stalls: Stalls) -> StallingProxy {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind the proxy on 127.0.0.1");
        let port = listener.local_addr().expect("proxy address").port();
        let stalled = Arc::new(AtomicU32::new(0));
        let target = SocketAddr::from((Ipv4Addr::LOCALHOST, target_port));
        let counter = stalled.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(target).await {
                        forward(client, server, stalls, counter).await;
                    }
                });
            }
        });
        StallingProxy {
            port,
            stalled,
            accept,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// How many stalls there have been so far.
    pub fn stalls(&self) -> u32 {
        self.stalled.load(Ordering::SeqCst)
    }
}

impl Drop for StallingProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Copies both ways until either side closes; the server's bytes stall as `stalls` says.
async fn forward(client: TcpStream, server: TcpStream, stalls: Stalls, stalled: Arc<AtomicU32>) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upstream = async {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        let _ = server_write.shutdown().await;
    };
    let downstream = async {
        let mut buf = vec![0u8; 1024];
        let mut since_stall = 0usize;
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if client_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
            since_stall += n;
            if since_stall >= stalls.every_bytes && take_stall(&stalled, stalls.at_most) {
                since_stall = 0;
                tokio::time::sleep(stalls.pause).await;
            }
        }
        let _ = client_write.shutdown().await;
    };
    tokio::join!(upstream, downstream);
}

/// Counts one more stall unless `at_most` were taken already.
fn take_stall(stalled: &AtomicU32, at_most: u32) -> bool {
    stalled
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (n < at_most).then_some(n + 1)
        })
        .is_ok()
}
